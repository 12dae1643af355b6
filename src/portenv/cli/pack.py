"""``portenv plan``, ``pack`` and ``convert``: options become a request for the pipeline."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from portenv.cli._shared import (
    compression_opts,
    entry_opt,
    env_name_opt,
    environment_opt,
    output_opt,
    platform_opt,
    print_written,
    project_arg,
    quiet_opt,
    skip_pypi_opt,
    use_cache_opt,
)
from portenv.cli.pysource import PythonOptions, python_source, source_request
from portenv.errors import UsageError

if TYPE_CHECKING:
    from portenv.model import Plan
    from portenv.reporting import Reporter
    from portenv.seal.bytecode import BytecodeScope
    from portenv.write import WrittenArchive

__all__ = ["convert_cmd", "pack_cmd", "plan_cmd"]


def _print_plan(the_plan: Plan, capacity: int | None) -> None:
    out = sys.stdout
    out.write(f"environment {the_plan.environment} on {the_plan.platform} ({the_plan.subdir})\n")
    out.write(f"conda packages: {len(the_plan.conda)}\n")
    for p in the_plan.conda:
        size = f"{p.size:>11,}" if p.size is not None else "          ?"
        out.write(f"  {p.name:<28} {p.version:<14} {p.build:<22} {size}  {p.url}\n")
        out.write(f"  {'':<28} sha256 {p.sha256 or '(none, md5 ' + str(p.md5) + ')'}\n")
    out.write(f"pypi packages: {len(the_plan.pypi)}\n")
    for q in the_plan.pypi:
        action = {
            "install": "download wheel",
            "build": "build from source",
            "skip": "skip (--skip-pypi)",
            "refuse": "refused",
        }[q.action]
        out.write(f"  {q.name:<28} {q.version:<14} {q.kind:<8} {action:<18} {q.url}\n")
        if q.action == "refuse":
            out.write(f"  {'':<28} {q.reason}\n")
    out.write(f"download size: {_download_size(the_plan)}\n")
    if capacity is None:
        out.write(
            "longest destination path: at most 255 bytes (exact once the packages are cached)\n"
        )
    else:
        out.write(f"longest destination path: {capacity} bytes\n")
    _print_glibc(the_plan)
    for problem in the_plan.problems:
        out.write(f"refused: {problem}\n")
    for note in the_plan.notes:
        out.write(f"note: {note}\n")


def _download_size(the_plan: Plan) -> str:
    """What the lock says of the bytes to download; files it gives no size for are counted."""
    known, unknown = the_plan.download_size, the_plan.unknown_sizes
    if not unknown:
        return f"{known:,} bytes"
    files = f"{unknown} file{'s' if unknown > 1 else ''}"
    if not known:
        return f"unknown (the lock records no size for the {files})"
    return f"{known:,} bytes + {files} of unknown size"


def _print_glibc(the_plan: Plan, shown: int = 5) -> None:
    """What sets the glibc floor, as far as the plan knows (pack names the files)."""
    out = sys.stdout
    sources = the_plan.glibc_sources
    if not sources:
        out.write("glibc floor: set by the ELF files only (pack measures it and names them)\n")
        return
    out.write(f"glibc floor: at least {sources[0][0]} (pack adds what the ELF files need), from:\n")
    for version, what in sources[:shown]:
        out.write(f"  {version:<6} {what}\n")
    if len(sources) > shown:
        out.write(f"  ... and {len(sources) - shown} more (--json lists them all)\n")


@click.command("plan")
@project_arg
@environment_opt
@platform_opt
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@use_cache_opt
@skip_pypi_opt
@python_source
def plan_cmd(
    project: Path,
    environment: str,
    platform: str | None,
    as_json: bool,
    use_cache: Path | None,
    skip_pypi: tuple[str, ...],
    python_source: PythonOptions,
) -> None:
    """Show what would be packed, without downloading anything."""
    from portenv.pack import cached_capacity, plan

    the_plan = plan(source_request(project, environment, platform, skip_pypi, python_source))
    capacity = cached_capacity(the_plan, use_cache)
    if as_json:
        json.dump({**the_plan.to_json(), "prefix_max": capacity}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_plan(the_plan, capacity)


@click.command("pack")
@project_arg
@output_opt("env.sh", "env.sh (self-extracting) or env.tar (for portenv-unpack).")
@environment_opt
@platform_opt
@use_cache_opt
@env_name_opt
@click.option(
    "--format",
    "archive_format",
    type=click.Choice(["portenv", "pixi-pack", "tar.gz", "zip"]),
    default="portenv",
    show_default=True,
    help="portenv (env.sh / env.tar), pixi-pack (a .tar for pixi-unpack), or a plain "
    "tar.gz / zip whose root is the environment, that runs wherever any tool extracts it "
    "(Spark --archives, Ray, Dask).",
)
@click.option(
    "--dereference",
    is_flag=True,
    help="Plain tar.gz: store symlinks as copies, for extractors that drop links (Ray).",
)
@click.option(
    "--inject",
    "inject",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Add a local conda package file (repeatable, pixi-pack format); its dependencies "
    "must be satisfied by the lock.",
)
@compression_opts
@click.option(
    "--no-reuse",
    is_flag=True,
    help="Stage and seal afresh: neither reuse nor keep the sealed environment that a "
    "pack of the same lock leaves in the cache.",
)
@click.option(
    "--sbom",
    is_flag=True,
    help="Also write a CycloneDX 1.6 SBOM of the archive beside it (OUTPUT.cdx.json).",
)
@quiet_opt
@click.option(
    "--bytecode",
    "bytecode",
    type=click.Choice(["all", "stdlib", "none"]),  # seal.bytecode.BYTECODE_SCOPES
    default=None,
    help="Which .py files ship with their .pyc [default: all]: 'all' (no start on the "
    "target compiles anything, whoever runs it); 'stdlib', the interpreter's own library only "
    "(about 20% smaller archives: site-packages compiles at its first import, as after "
    "pixi-unpack, and at every start of a user who cannot write into the environment unless "
    "it is unpacked with --compile); 'none'.",
)
@click.option(
    "--no-bytecode",
    is_flag=True,
    help="Ship no .pyc files: the same as --bytecode none.",
)
@click.option(
    "--no-pip",
    is_flag=True,
    help="With --python: leave pip out (by default the interpreter's own ensurepip wheel "
    "is installed, as `python -m venv` does).",
)
@entry_opt
@skip_pypi_opt
@click.option(
    "--allow-missing-library",
    "allow_missing",
    multiple=True,
    metavar="SONAME",
    help="Leave this shared library (or glob) to the target: it is not bundled, and its "
    "absence on this machine is no error (repeatable).",
)
@click.option(
    "--glibc",
    default=None,
    metavar="2.N",
    help="Refuse to pack an environment that needs a newer glibc than this; with --python, "
    "PyPI wheels are resolved for that manylinux level (default 2.28).",
)
@click.option(
    "--delta-from",
    "delta_from",
    type=click.Path(path_type=Path),
    default=None,
    metavar="OLD",
    help="Write to -o the update from the archive OLD to the environment packed "
    "(as `portenv delta OLD NEW`), instead of the full archive.",
)
@python_source
def pack_cmd(
    project: Path,
    output: Path,
    environment: str,
    platform: str | None,
    use_cache: Path | None,
    env_name: str,
    archive_format: Literal["portenv", "pixi-pack", "tar.gz", "zip"],
    dereference: bool,
    inject: tuple[Path, ...],
    compression: str | None,
    level: int | None,
    no_reuse: bool,
    sbom: bool,
    quiet: bool,
    bytecode: BytecodeScope | None,
    no_bytecode: bool,
    no_pip: bool,
    entry: str,
    skip_pypi: tuple[str, ...],
    allow_missing: tuple[str, ...],
    glibc: str | None,
    delta_from: Path | None,
    python_source: PythonOptions,
) -> None:
    """Pack an environment into a self-extracting env.sh or an env.tar."""
    from portenv.cli.progress import RichReporter
    from portenv.pack import PackRequest, PythonRequest, pack

    reporter = RichReporter(quiet=quiet)
    source = source_request(project, environment, platform, skip_pypi, python_source)
    if no_pip:
        if not isinstance(source, PythonRequest):
            msg = "--no-pip applies to --python packs only"
            raise UsageError(msg, hint="a pixi project has pip only if its lock lists it")
        source = dataclasses.replace(source, pip=False)
    final = output
    if delta_from is not None:
        from portenv.delta import check_delta_output

        check_delta_output(delta_from, output)
        output = output.with_name(f".{output.name}.full{output.suffix}")
    try:
        written = pack(
            PackRequest(
                source,
                output,
                cache=use_cache,
                env_name=env_name,
                format=archive_format,
                dereference=dereference,
                compression=compression,
                level=level,
                inject=inject,
                reuse_sealed=not no_reuse,
                sbom=sbom,
                allow_missing=allow_missing,
                glibc=glibc,
                bytecode=bytecode_scope(bytecode, no_bytecode),
                entry=entry,
            ),
            reporter,
        )
        if delta_from is not None:
            written = _delta_of_full(delta_from, written, final, reporter)
    finally:
        reporter.close()
    if not quiet:
        print_written(written)
    sys.stdout.write(f"{written.sha256}  {written.path}\n")


def bytecode_scope(chosen: BytecodeScope | None, no_bytecode: bool) -> BytecodeScope:
    """--bytecode, or its older spelling --no-bytecode; never both saying different things."""
    if no_bytecode and chosen not in (None, "none"):
        msg = f"--no-bytecode contradicts --bytecode {chosen}"
        raise UsageError(msg, hint="pass one of them")
    return "none" if no_bytecode else chosen or "all"


def _delta_of_full(
    old: Path, full: WrittenArchive, output: Path, reporter: Reporter
) -> WrittenArchive:
    """`pack --delta-from`: the update from OLD to the archive just written, which goes."""
    from portenv.delta import DeltaRequest, make_update

    try:
        return make_update(DeltaRequest(old, full.path, output), reporter)
    finally:
        full.path.unlink(missing_ok=True)
        full.path.with_name(full.path.name + ".sha256").unlink(missing_ok=True)


@click.command("convert")
@click.argument("archive", type=click.Path(path_type=Path))
@output_opt("env.sh", "env.sh (self-extracting) or env.tar.")
@env_name_opt
@compression_opts
@use_cache_opt
@entry_opt
def convert_cmd(
    archive: Path,
    output: Path,
    env_name: str,
    compression: str | None,
    level: int | None,
    use_cache: Path | None,
    entry: str,
) -> None:
    """Turn a pixi-pack archive into a portenv env.sh or env.tar, offline."""
    from portenv.cli.progress import RichReporter
    from portenv.convert import ConvertRequest, convert

    reporter = RichReporter()
    try:
        request = ConvertRequest(archive, output, env_name, level, use_cache, compression, entry)
        written = convert(request, reporter)
    finally:
        reporter.close()
    sys.stderr.write(f"wrote {written.path}\n")
    sys.stdout.write(f"{written.sha256}  {written.path}\n")

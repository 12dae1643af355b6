"""The command line: options become one request, the library does the work, errors end here."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tarfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn

import click

from portenv import __version__
from portenv.cli.author import COMMANDS as AUTHOR_COMMANDS
from portenv.cli.inspect import inspect_cmd
from portenv.cli.pysource import PythonOptions, python_source, source_request
from portenv.errors import PortenvError, UsageError
from portenv.model import Plan

if TYPE_CHECKING:
    from portenv.reporting import Reporter
    from portenv.write import WrittenArchive

__all__ = ["app", "main", "run"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(__version__, prog_name="portenv")
def app(debug: bool) -> None:
    """Turn a Python environment into one file that runs on a bare Linux machine."""


project_arg = click.argument(
    "project", type=click.Path(path_type=Path), default=Path("."), required=False
)
environment_opt = click.option(
    "-e", "--environment", default="default", show_default=True, help="Environment of the lock."
)
platform_opt = click.option(
    "-p", "--platform", default=None, help="Platform of the lock (default: this machine's)."
)


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


def output_opt(default: str, text: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """-o/--output with a default and a help text of its own."""
    return click.option(
        "-o",
        "--output",
        type=click.Path(path_type=Path),
        default=Path(default),
        show_default=True,
        help=text,
    )


def compression_opts(function: Callable[..., None]) -> Callable[..., None]:
    """--compression and --level (whose range and default are the codec's)."""
    function = click.option(
        "--level",
        type=int,
        default=None,
        help="Compression level: gzip 0-3 (ISA-L igzip levels; default 2), zstd 1-19 (default 9).",
    )(function)
    return click.option(
        "--compression",
        type=click.Choice(["gzip", "zstd"]),
        default="gzip",
        show_default=True,
        help="Payload compression. gzip unpacks on any target (tar + gzip); zstd is smaller "
        "and needs a zstd binary on the target (the unpacker refuses before writing "
        "anything when there is none).",
    )(function)


env_name_opt = click.option(
    "--env-name", default="env", show_default=True, help="Folder name on the target."
)
entry_opt = click.option(
    "--entry",
    default="",
    metavar="CMD",
    help="Make the env.sh a one-file app that runs this command of the environment's bin/ "
    "(a console script, python, or e.g. 'python -m mypkg'): ./tool.sh ARGS runs it from a "
    "per-user cache, unpacked on the first run.",
)
skip_pypi_opt = click.option(
    "--skip-pypi",
    "skip_pypi",
    multiple=True,
    metavar="NAME",
    help="Leave out this PyPI package, with a warning (repeatable).",
)
use_cache_opt = click.option(
    "--use-cache",
    type=click.Path(path_type=Path),
    default=None,
    help="Package cache folder (default: the user cache).",
)


@app.command("plan")
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


@app.command("pack")
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
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress and no notes (errors and warnings still)."
)
@click.option(
    "--no-bytecode",
    is_flag=True,
    help="Ship no .pyc files: smaller, but the first start on the target compiles what it "
    "imports, and a user who cannot write into the environment compiles it at every start.",
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
    compression: str,
    level: int | None,
    no_reuse: bool,
    sbom: bool,
    quiet: bool,
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
                bytecode=not no_bytecode,
                entry=entry,
            ),
            reporter,
        )
        if delta_from is not None:
            written = _delta_of_full(delta_from, written, final, reporter)
    finally:
        reporter.close()
    if not quiet:
        _print_written(written)
    sys.stdout.write(f"{written.sha256}  {written.path}\n")


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


@app.command("delta")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@output_opt("update.sh", "update.sh (self-extracting) or update.tar (for portenv-unpack).")
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress and no notes (errors and warnings still)."
)
def delta_cmd(old: Path, new: Path, output: Path, quiet: bool) -> None:
    """Write an update from the archive OLD to the archive NEW: only what changed."""
    from portenv.cli.progress import RichReporter
    from portenv.delta import DeltaRequest, check_delta_output, make_update

    check_delta_output(old, output)
    reporter = RichReporter(quiet=quiet)
    try:
        written = make_update(DeltaRequest(old, new, output), reporter)
    finally:
        reporter.close()
    if not quiet:
        _print_written(written)
    sys.stdout.write(f"{written.sha256}  {written.path}\n")


def _print_written(written: WrittenArchive) -> None:
    """The note on stderr of what `pack` wrote."""
    meta = written.meta
    size = f"{written.path.stat().st_size:,} bytes"
    if meta is None:
        sys.stderr.write(f"wrote {written.path} ({size}, pixi-pack format)\n")
    elif written.format_name:
        sys.stderr.write(
            f"wrote {written.path} ({size}, {meta.files} files, glibc >= {meta.glibc_floor},"
            f" plain {written.format_name}: runs wherever it is extracted)\n"
        )
    else:
        sys.stderr.write(
            f"wrote {written.path} ({size}, {meta.files} files, glibc >= {meta.glibc_floor}, "
            f"destination paths up to {meta.prefix_max} bytes)\n"
        )
        if meta.glibc_floor_files:
            files = ", ".join(f"{f} ({v})" for v, f in meta.glibc_floor_files)
            sys.stderr.write(f"glibc floor set by: {files}\n")
    if written.sbom is not None:
        count = len(written.inventory)
        sys.stderr.write(f"wrote {written.sbom} (CycloneDX SBOM, {count} components)\n")


@app.command("unpacker")
@output_opt("portenv-unpack", "Where to write it.")
def unpacker_cmd(output: Path) -> None:
    """Write the standalone POSIX sh unpacker for env.tar archives."""
    from portenv.write import atomic_output
    from portenv.write.container import render_unpacker

    with atomic_output(output, 0o755) as sink:
        sink.write(render_unpacker(embedded=False))
    sys.stderr.write(f"wrote {output}\n")


@app.command("unpack")
@click.argument("archive", type=click.Path(path_type=Path))
@output_opt(".", "Parent folder of the environment.")
@click.option("--env-name", default=None, help="Folder name under -o (default: the archive's).")
@click.option("--force", is_flag=True, help="Replace an existing environment there.")
@click.option(
    "--platform-check",
    type=click.Choice(["on", "off"]),
    default="on",
    show_default=True,
    help="Refuse an archive built for another machine.",
)
@click.option("--info", is_flag=True, help="Print a portenv archive's meta block; write nothing.")
@click.option(
    "--list",
    "list_packages",
    is_flag=True,
    help="Verify a portenv archive's payload, print its packages; write nothing.",
)
def unpack_cmd(
    archive: Path,
    output: Path,
    env_name: str | None,
    force: bool,
    platform_check: str,
    info: bool,
    list_packages: bool,
) -> None:
    """Unpack an env.sh, an env.tar or a pixi-pack archive (tar or folder) on this machine."""
    from portenv.cli.progress import RichReporter
    from portenv.unpack import UnpackRequest, describe, unpack

    if info or list_packages:
        sys.stdout.write(describe(archive, "list" if list_packages else "info"))
        return
    reporter = RichReporter()
    try:
        result = unpack(
            UnpackRequest(archive, output, env_name, force, platform_check == "on"), reporter
        )
    finally:
        reporter.close()
    if result.updated:
        sys.stderr.write(f"portenv: updated {result.path} ({result.files} paths)\n")
    else:
        sys.stderr.write(f"portenv: unpacked {result.files} files into {result.path}\n")
    sys.stderr.write(f"activate with: . {result.activate}\n")


@app.command("convert")
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
    compression: str,
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


for _command in AUTHOR_COMMANDS:
    app.add_command(_command)
app.add_command(inspect_cmd)


def _report(error: PortenvError) -> None:
    sys.stderr.write(f"error: {error.message}\n")
    if error.hint:
        sys.stderr.write(f"  hint: {error.hint}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the single place where errors become exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if not hasattr(tarfile, "data_filter"):  # PEP 706: 3.10.12, 3.11.4, 3.12
        version = ".".join(map(str, sys.version_info[:3]))
        msg = f"Python {version} has no tarfile extraction filters, which portenv needs"
        _report(PortenvError(msg, hint="run portenv with Python 3.10.12+, 3.11.4+ or 3.12+"))
        return 1
    try:
        returned = app.main(args=args, prog_name="portenv", standalone_mode=False)
    except PortenvError as error:
        if debug:
            traceback.print_exc()
        _report(error)
        return error.exit_code
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.exceptions.Abort:
        sys.stderr.write("interrupted\n")
        return 130
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except click.ClickException as usage:
        usage.show()
        return usage.exit_code
    return returned if isinstance(returned, int) else 0


def run() -> NoReturn:
    """Console-script entry point.

    Leaves with os._exit: py-rattler's async runtime can crash during interpreter
    finalization after its work is done (see FIELD-NOTES), which must not turn a success into
    a random failure.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

"""Options and output shared by the command groups (plan/pack/convert, unpack, delta)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from portenv.write import WrittenArchive

__all__ = [
    "compression_opts",
    "entry_opt",
    "env_name_opt",
    "environment_opt",
    "output_opt",
    "platform_opt",
    "print_written",
    "project_arg",
    "quiet_opt",
    "skip_pypi_opt",
    "use_cache_opt",
]

project_arg = click.argument(
    "project", type=click.Path(path_type=Path), default=Path("."), required=False
)
environment_opt = click.option(
    "-e", "--environment", default="default", show_default=True, help="Environment of the lock."
)
platform_opt = click.option(
    "-p", "--platform", default=None, help="Platform of the lock (default: this machine's)."
)


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
        help="Compression level: gzip 0-3 (ISA-L igzip levels; default 2), zstd 1-19 (default 10).",
    )(function)
    return click.option(
        "--compression",
        type=click.Choice(["gzip", "zstd"]),
        default=None,
        help="Payload compression [default: zstd]. Both unpack with only sh, tar and gzip on "
        "the target: a zstd archive carries a small decompressor for its arch (built from "
        "zstd's source by scripts/build-unzstd.sh); gzip makes a single-stage archive.",
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

quiet_opt = click.option(
    "-q", "--quiet", is_flag=True, help="No progress and no notes (errors and warnings still)."
)


def print_written(written: WrittenArchive) -> None:
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

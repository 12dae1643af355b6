"""``portenv unpack`` and ``unpacker``: put an archive in place, or write the sh unpacker."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from portenv.cli._shared import output_opt

__all__ = ["unpack_cmd", "unpacker_cmd"]


@click.command("unpacker")
@output_opt("portenv-unpack", "Where to write it.")
def unpacker_cmd(output: Path) -> None:
    """Write the standalone POSIX sh unpacker for env.tar archives."""
    from portenv.write import atomic_output
    from portenv.write.container import render_unpacker

    with atomic_output(output, 0o755) as sink:
        sink.write(render_unpacker(embedded=False))
    sys.stderr.write(f"wrote {output}\n")


@click.command("unpack")
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
@click.option(
    "--compile",
    "compile_bytecode",
    is_flag=True,
    help="Also write the bytecode of every module that has none (for users who cannot"
    " write into the environment).",
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
    compile_bytecode: bool,
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
            UnpackRequest(
                archive,
                output,
                env_name,
                force,
                platform_check == "on",
                compile_bytecode=compile_bytecode,
            ),
            reporter,
        )
    finally:
        reporter.close()
    if result.updated:
        sys.stderr.write(f"portenv: updated {result.path} ({result.files} paths)\n")
    else:
        sys.stderr.write(f"portenv: unpacked {result.files} files into {result.path}\n")
    sys.stderr.write(f"activate with: . {result.activate}\n")

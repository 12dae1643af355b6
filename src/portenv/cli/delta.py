"""``portenv delta``: an update from one archive to another, only what changed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from portenv.cli._shared import output_opt, print_written, quiet_opt

__all__ = ["delta_cmd"]


@click.command("delta")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@output_opt("update.sh", "update.sh (self-extracting) or update.tar (for portenv-unpack).")
@quiet_opt
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
        print_written(written)
    sys.stdout.write(f"{written.sha256}  {written.path}\n")

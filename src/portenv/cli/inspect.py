"""``portenv inspect``: what an archive or environment holds, and why it is big."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["inspect_cmd"]


@click.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (docs/inspect.md).")
@click.option(
    "--html",
    "html_output",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the report as one self-contained HTML page (a size map, sortable tables).",
)
@click.option(
    "--sbom",
    "sbom_output",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[=PATH]",
    help="Also write the CycloneDX SBOM that pack --sbom writes: beside the input "
    "(INPUT.cdx.json), or to --sbom=PATH.",
)
def inspect_cmd(
    path: Path, as_json: bool, html_output: Path | None, sbom_output: str | None
) -> None:
    """Show what an env.sh, env.tar, pixi-pack archive or unpacked env holds, and its sizes."""
    from portenv.inspect import InspectRequest, inspect, render_text, report_json

    beside = sbom_output == ""
    sbom = Path(sbom_output) if sbom_output else None
    done = inspect(InspectRequest(path, html=html_output, sbom=sbom, sbom_beside=beside))
    if done.sbom is not None:
        components = len(done.report.inventory)
        sys.stderr.write(f"wrote {done.sbom} (CycloneDX SBOM, {components} components)\n")
    if done.html is not None:
        sys.stderr.write(f"wrote {done.html}\n")
    if as_json:
        sys.stdout.write(json.dumps(report_json(done.report), indent=1) + "\n")
    else:
        sys.stdout.write(render_text(done.report))

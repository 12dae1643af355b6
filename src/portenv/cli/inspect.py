"""``portenv inspect``: what an archive or environment holds, and why it is big."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["inspect_cmd"]


def _not_a_folder(output: Path, option: str) -> Path:
    """An output file's path; a folder there would fail only after the work, so not at all."""
    from portenv.errors import OutputError

    if output.is_dir():
        msg = f"{output} is a folder"
        raise OutputError(msg, hint=f"name a file: {option}=FILE")
    return output


def _write_page(page: str, output: Path) -> None:
    from portenv.write import atomic_output

    with atomic_output(output) as sink:
        sink.write(page.encode("utf-8"))


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
    from portenv.inspect import inspect, render_html, render_text, report_json, write_sbom

    if html_output is not None:
        _not_a_folder(html_output, "--html")
    sbom_path = _not_a_folder(Path(sbom_output), "--sbom") if sbom_output else None
    report = inspect(path)
    if sbom_output is not None:
        written = write_sbom(report, sbom_path)
        sys.stderr.write(f"wrote {written} (CycloneDX SBOM, {len(report.inventory)} components)\n")
    if html_output is not None:
        _write_page(render_html(report), html_output)
        sys.stderr.write(f"wrote {html_output}\n")
    if as_json:
        sys.stdout.write(json.dumps(report_json(report), indent=1) + "\n")
    else:
        sys.stdout.write(render_text(report))

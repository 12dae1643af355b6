"""What an archive or environment holds, and why it is big: ``portenv inspect``.

A reader at the end of the pipeline: it reads what `pack` (and pixi-pack, and an unpack)
wrote, with the readers of the earlier stages (portenv.unpack for the archive format,
portenv.source.pixipack for pixi-pack, portenv.elf for the glibc floor, portenv.write.sbom for
the SBOM), and writes only its own reports. Nothing but the CLI imports it.

``read_report(path)`` gives one Report; `report_json`, `render_text` and `render_html` show it.
``inspect(InspectRequest(path, html=..., sbom=...))`` also writes the page and the CycloneDX
document that ``pack --sbom`` writes for the same archive, after checking both outputs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from portenv.errors import InputError, OutputError
from portenv.inspect._archive import read_portenv_archive
from portenv.inspect._envdir import is_environment, read_environment
from portenv.inspect._model import Report
from portenv.inspect._pixipack import read_pixi_pack
from portenv.inspect._report import Found, build_report
from portenv.inspect.html import render_html, write_html
from portenv.inspect.jsonout import SCHEMA_VERSION, report_json
from portenv.inspect.sbom import sbom_path, write_sbom
from portenv.inspect.text import render_text
from portenv.source.pixipack import is_pixi_pack
from portenv.unpack import archive_kind
from portenv.write.sbom import sbom_timestamp

__all__ = [
    "SCHEMA_VERSION",
    "InspectRequest",
    "Inspected",
    "Report",
    "inspect",
    "read_report",
    "render_html",
    "render_text",
    "report_json",
]


@dataclass(frozen=True)
class InspectRequest:
    """Inspect `path`; also write the HTML page to `html` and the SBOM to `sbom`.

    `sbom_beside` writes the SBOM beside the input (``INPUT.cdx.json``) when `sbom` is None.
    """

    path: Path
    html: Path | None = None
    sbom: Path | None = None
    sbom_beside: bool = False


@dataclass(frozen=True)
class Inspected:
    """The report, and the files written."""

    report: Report
    html: Path | None
    sbom: Path | None


def _read(path: Path, scratch: Path) -> Found:
    if path.is_dir() and not is_environment(path) and is_pixi_pack(path):
        return read_pixi_pack(path, scratch)
    if path.is_dir():
        return read_environment(path, scratch)
    if archive_kind(path) == "pixi-pack":
        return read_pixi_pack(path, scratch)
    return read_portenv_archive(path, scratch)


def read_report(path: Path) -> Report:
    """Read an env.sh, env.tar, pixi-pack archive (tar or folder) or unpacked environment.

    Archives are read as streams, one scratch file at a time (in TMPDIR); nothing is written
    elsewhere. Raises InputError (one line and a hint) for a path that is missing, not one of
    those, or damaged.
    """
    if not path.exists():
        msg = f"{path} does not exist"
        raise InputError(msg, hint="give an env.sh, an env.tar, a pixi-pack archive or an env")
    with tempfile.TemporaryDirectory(prefix="portenv-inspect-") as scratch:
        return build_report(_read(path, Path(scratch)))


def _check_output(output: Path, source: Path, option: str) -> Path:
    """Refuse, before any work, an output that cannot be written or would replace the input."""
    if output.is_dir():
        msg = f"{output} is a folder"
        raise OutputError(msg, hint=f"name a file: {option}=FILE")
    if not Path(os.path.abspath(output)).parent.is_dir():
        msg = f"output folder does not exist: {Path(os.path.abspath(output)).parent}"
        raise OutputError(msg, hint="create it first, or choose another path")
    if output.exists() and source.exists() and output.samefile(source):
        msg = f"{output} is the input: writing there would destroy it"
        raise OutputError(msg, hint=f"choose another {option} path")
    return output


def inspect(request: InspectRequest) -> Inspected:
    """The report of `request.path`, and the files the request asks for, in that order.

    Every output and a bad ``SOURCE_DATE_EPOCH`` are checked before the input is read.
    """
    html = request.html and _check_output(request.html, request.path, "--html")
    sbom = request.sbom or (sbom_path(request.path) if request.sbom_beside else None)
    if sbom is not None:
        _check_output(sbom, request.path, "--sbom")
    timestamp = sbom_timestamp() if sbom is not None else None
    report = read_report(request.path)
    return Inspected(
        report,
        html=write_html(report, html) if html else None,
        sbom=write_sbom(report, sbom, timestamp) if sbom is not None else None,
    )

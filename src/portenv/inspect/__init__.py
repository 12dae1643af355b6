"""What an archive or environment holds, and why it is big: ``portenv inspect``.

A reader at the end of the pipeline: it reads what `pack` (and pixi-pack, and an unpack)
wrote, with the readers of the earlier stages (portenv.unpack for the archive format,
portenv.source.pixipack for pixi-pack, portenv.elf for the glibc floor, portenv.write.sbom for
the SBOM), and writes only its own reports. Nothing but the CLI imports it.

``inspect(path)`` gives one Report; `report_json`, `render_text` and `render_html` show it;
`write_sbom` writes the CycloneDX document that ``pack --sbom`` writes for the same archive.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from portenv.errors import InputError
from portenv.inspect._archive import read_portenv_archive
from portenv.inspect._envdir import is_environment, read_environment
from portenv.inspect._model import Report
from portenv.inspect._pixipack import read_pixi_pack
from portenv.inspect._report import Found, build_report
from portenv.inspect.html import render_html
from portenv.inspect.jsonout import SCHEMA_VERSION, report_json
from portenv.inspect.sbom import write_sbom
from portenv.inspect.text import render_text
from portenv.source.pixipack import is_pixi_pack
from portenv.unpack import archive_kind

__all__ = [
    "SCHEMA_VERSION",
    "Report",
    "inspect",
    "render_html",
    "render_text",
    "report_json",
    "write_sbom",
]


def _read(path: Path, scratch: Path) -> Found:
    if path.is_dir() and not is_environment(path) and is_pixi_pack(path):
        return read_pixi_pack(path, scratch)
    if path.is_dir():
        return read_environment(path, scratch)
    if archive_kind(path) == "pixi-pack":
        return read_pixi_pack(path, scratch)
    return read_portenv_archive(path, scratch)


def inspect(path: Path) -> Report:
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

"""Read an unpacked environment for inspect: a portenv env (`.portenv/`) or a conda prefix.

A portenv env carries the archive's records in `.portenv/` (the inventory, the relocation
manifest naming the interpreter, the bundled libraries). A conda prefix (pixi's, pixi-unpack's,
conda's) has only conda-meta and the dist-infos; both are read where they are, nothing is
copied.
"""

from __future__ import annotations

import json
from pathlib import Path

from portenv.errors import InputError
from portenv.inspect._archive import inventory_of
from portenv.inspect._owners import conda_meta
from portenv.inspect._report import Found
from portenv.inspect._scan import Scan, Scanner

__all__ = ["MANIFEST", "is_environment", "read_environment"]

MANIFEST = ".portenv/manifest.json"


def is_environment(path: Path) -> bool:
    """A folder that portenv unpacked (`.portenv/`) or any conda prefix (`conda-meta/`)."""
    return (path / ".portenv").is_dir() or (path / "conda-meta").is_dir()


def _python(scan: Scan, conda: list[dict[str, object]]) -> str | None:
    """The manifest's interpreter, else the conda python package's ``bin/pythonX.Y``."""
    try:
        manifest = json.loads(scan.records.get(MANIFEST, b"{}"))
    except ValueError:
        manifest = {}
    if isinstance(manifest, dict) and isinstance(manifest.get("python"), str):
        return str(manifest["python"])
    version = next((str(r.get("version")) for r in conda if r.get("name") == "python"), "")
    candidate = "bin/python" + ".".join(version.split(".")[:2])
    return candidate if version and candidate in scan.sizes else None


def read_environment(path: Path, scratch: Path) -> Found:
    """Everything inspect shows of an unpacked environment, read in place."""
    if not is_environment(path):
        msg = f"{path} is a folder with neither .portenv/ nor conda-meta/ nor pixi-pack.json"
        raise InputError(msg, hint="give an unpacked environment, or a pixi-pack folder")
    scanner = Scanner(scratch)
    scanner.folder(path)
    scan = scanner.scan
    conda = list(conda_meta(scan.records).values())
    subdirs = sorted(
        {str(r.get("subdir")) for r in conda if r.get("subdir") not in (None, "noarch")}
    )
    return Found(
        path=str(path),
        kind="env",
        scan=scan,
        inventory=inventory_of(scan),
        platform=subdirs[0] if len(subdirs) == 1 else None,
        python=_python(scan, conda),
    )

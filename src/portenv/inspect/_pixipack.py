"""Read a pixi-pack archive (tar or folder) for inspect: its packages' files, not installed.

The pack is opened and verified by portenv.source.pixipack (each package file against its
repodata record). Each conda package is then laid out alone in the scratch folder and read
there (its files are where an install puts them; a ``noarch: python`` package's
``site-packages/`` and ``python-scripts/`` go where the pack's python puts them), and each
wheel is read as a zip, its ``.data/`` folders mapped as an installer maps them. So the sizes
are those of an installed environment, and the ELF files say its glibc floor.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

from packaging.utils import canonicalize_name

from portenv import _rattler
from portenv.elf import ElfFacts
from portenv.errors import InputError
from portenv.fetch import file_digest
from portenv.inspect._model import ArchiveFacts
from portenv.inspect._report import Found
from portenv.inspect._scan import Scanner
from portenv.pack import pixi_pack_inventory
from portenv.seal.checks import glibc_floor
from portenv.source.pixipack import PixiPack, open_pixi_pack

__all__ = ["read_pixi_pack"]

_DATA_SCHEMES = {"purelib": "{site}", "platlib": "{site}", "scripts": "bin", "data": ""}


def _python_dir(pack: PixiPack) -> str | None:
    """``python3.12`` for the pack's conda python, which names bin/ and lib/ entries."""
    python = next((f.package for f in pack.conda if f.package.name == "python"), None)
    if python is None:
        return None
    return "python" + ".".join(python.version.split(".")[:2])


def _noarch_python(folder: Path) -> bool:
    try:
        index = json.loads((folder / "info" / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(index, dict) and index.get("noarch") == "python"


def _conda_paths(noarch: bool, python: str | None) -> Callable[[str], str | None]:
    """Where an install puts a package file (None: the package's own ``info/``)."""
    site = f"lib/{python}/site-packages" if python else "site-packages"

    def rename(path: str) -> str | None:
        if path.startswith("info/"):
            return None
        if noarch and path.startswith("site-packages/"):
            return site + path.removeprefix("site-packages")
        if noarch and path.startswith("python-scripts/"):
            return "bin" + path.removeprefix("python-scripts")
        return path

    return rename


def _wheel_paths(python: str | None) -> Callable[[str], str]:
    """Where an installer puts a wheel member (``NAME.data/SCHEME/...`` mapped)."""
    site = f"lib/{python}/site-packages" if python else "site-packages"
    include = f"include/{python}" if python else "include"

    def rename(name: str) -> str:
        first, _, rest = name.partition("/")
        scheme, _, inner = rest.partition("/")
        if first.endswith(".data") and inner:
            if scheme == "headers":
                return f"{include}/{inner}"
            base = _DATA_SCHEMES.get(scheme, "{site}").format(site=site)
            return f"{base}/{inner}" if base else inner
        return f"{site}/{name}"

    return rename


def _scan_packages(pack: PixiPack, scanner: Scanner, scratch: Path) -> None:
    python = _python_dir(pack)
    folder = scratch / "package"
    for fetched in pack.conda:
        folder.mkdir()
        try:
            _rattler.extract_package(fetched.path, folder)
            rename = _conda_paths(_noarch_python(folder), python)
            scanner.folder(folder, rename, owner=f"conda:{fetched.package.name}")
        finally:
            shutil.rmtree(folder)
    for wheel in pack.wheels:
        owner = f"pypi:{canonicalize_name(wheel.package.name)}"
        try:
            with zipfile.ZipFile(wheel.path) as archive:
                scanner.wheel(archive, _wheel_paths(python), owner)
        except (zipfile.BadZipFile, OSError) as exc:
            msg = f"the wheel {pack.location(wheel.path)} cannot be read: {exc}"
            raise InputError(
                msg, hint="the archive is damaged: get it again from its source"
            ) from exc


def _maker(tool: str | None) -> str | None:
    """pixi-pack.json's ``pixi-pack-version``: pixi-pack's own (``0.3.0``), or another writer's
    name and version (``portenv/0.1.0``)."""
    if not tool:
        return None
    return tool if "/" in tool else f"pixi-pack {tool}"


def _facts(path: Path, pack: PixiPack) -> ArchiveFacts:
    folder = path.is_dir()
    return ArchiveFacts(
        shape="pixi-pack folder" if folder else "pixi-pack tar",
        size=None if folder else path.stat().st_size,
        sha256=None if folder else file_digest(path),
        compression=None,
        made_by=_maker(pack.metadata.pixi_pack_version),
        format=pack.metadata.version,
    )


def read_pixi_pack(path: Path, scratch: Path) -> Found:
    """Everything inspect shows of a pixi-pack archive; InputError when it is damaged."""
    pack = open_pixi_pack(path, scratch / "pack")
    scanner = Scanner(scratch)
    _scan_packages(pack, scanner, scratch)
    depends = [d for f in pack.conda for d in f.package.depends]
    recorded = None
    if any(d.startswith("__glibc") for d in depends):
        recorded = glibc_floor(ElfFacts(None, None, {}), None, depends)
    python = _python_dir(pack)
    return Found(
        path=str(path),
        kind="pixi-pack",
        scan=scanner.scan,
        inventory=pixi_pack_inventory(pack),
        archive=_facts(path, pack),
        platform=str(pack.metadata.platform),
        python=f"bin/{python}" if python else None,
        recorded_floor=recorded,
    )

"""Build small conda packages in code (.tar.bz2), for tests that need a precise shape."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from portenv.platforms import SUBDIR_ARCH

__all__ = ["PackageFile", "make_conda_package"]


@dataclass(frozen=True)
class PackageFile:
    """One file of the package; `placeholder` + `mode` mark it as holding the build prefix."""

    path: str
    content: bytes
    placeholder: str | None = None
    mode: str = "text"
    executable: bool = False


def _add(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    archive.addfile(info, io.BytesIO(data))


def _paths_json(files: list[PackageFile]) -> bytes:
    entries = []
    for f in files:
        entry: dict[str, object] = {
            "_path": f.path,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(f.content).hexdigest(),
            "size_in_bytes": len(f.content),
        }
        if f.placeholder is not None:
            entry["prefix_placeholder"] = f.placeholder
            entry["file_mode"] = f.mode
        entries.append(entry)
    return json.dumps({"paths": entries, "paths_version": 1}).encode()


def make_conda_package(
    folder: Path,
    name: str,
    files: list[PackageFile],
    *,
    version: str = "1.0",
    subdir: str = "linux-64",
    depends: tuple[str, ...] = (),
) -> Path:
    """Write `name-version-0.tar.bz2` into `folder/subdir` and return its path."""
    index = {
        "name": name,
        "version": version,
        "build": "0",
        "build_number": 0,
        "subdir": subdir,
        "depends": list(depends),
        "platform": None if subdir == "noarch" else subdir.split("-")[0],
        "arch": SUBDIR_ARCH.get(subdir),
    }
    target = folder / subdir / f"{name}-{version}-0.tar.bz2"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:bz2") as archive:
        _add(archive, "info/index.json", json.dumps(index).encode())
        _add(archive, "info/paths.json", _paths_json(files))
        _add(archive, "info/files", "".join(f.path + "\n" for f in files).encode())
        for f in files:
            _add(archive, f.path, f.content, 0o755 if f.executable else 0o644)
    return target

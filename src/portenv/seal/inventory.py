"""What `.portenv/packages.json` says of each package beyond its identity: source, licence, size.

Read from what was installed, so the figures are those of the environment that ships: a conda
package's conda-meta record (its licence and channel as the lock records them, and its files),
a PyPI distribution's ``*.dist-info`` (METADATA for the licence, RECORD for the files). A
pixi-pack archive installs nothing; its wheels are read as files (`wheel_facts`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from email.parser import HeaderParser
from pathlib import Path
from typing import Literal

from packaging.utils import canonicalize_name

from portenv import _rattler
from portenv.model import CondaPackage, StagedPrefix
from portenv.stage.wheels import site_packages

__all__ = [
    "Source",
    "conda_entry",
    "conda_source",
    "describe_installed",
    "interpreter_entry",
    "license_of_metadata",
    "pypi_source",
    "wheel_facts",
]

Source = Literal["channel", "file", "url", "index", "git", "folder", "interpreter"]
"""Where a package came from: a conda channel, a file on the build machine, a URL, a Python
package index, a git repository, a source folder on the build machine, or the wheels the
interpreter bundles (ensurepip's pip)."""
_LONG_LICENSE = 100
"""A ``License:`` field longer than this (or of several lines) is the licence's text, not its
name: the classifiers name it better."""


def conda_source(url: str, channel: str | None, subdir: str) -> Source:
    """A package file inside its channel's subdir comes from the channel; else a file or URL."""
    if channel and url.startswith(f"{channel.rstrip('/')}/{subdir}/"):
        return "channel"
    return "file" if url.startswith("file:") or "://" not in url else "url"


def _origin(url: str, channel: str | None, subdir: str) -> dict[str, object]:
    """``source``, and ``channel`` only when the file is the channel's (not, say, a scratch
    folder that an injected or converted package was read from)."""
    source = conda_source(url, channel, subdir)
    return {"source": source, "channel": channel if source == "channel" else None}


def conda_entry(package: CondaPackage) -> dict[str, object]:
    """The inventory entry of a conda package from its lock record alone (nothing installed)."""
    return {
        "kind": "conda",
        **package.to_json(),
        "md5": package.md5,
        "license": _rattler.record_license(package),
        **_origin(package.url, _rattler.record_channel(package), package.subdir),
    }


def interpreter_entry(version: tuple[int, int, int]) -> dict[str, object]:
    """The CPython installation the conda-free source made portable: no package brings it,
    yet it is most of the environment. CPython is distributed under the Python licence
    stack (PSF, BeOpen, CNRI, CWI), SPDX ``Python-2.0``."""
    return {
        "kind": "cpython",
        "name": "python",
        "version": ".".join(map(str, version)),
        "license": "Python-2.0",
        "source": "file",
    }


def pypi_source(entry: Mapping[str, object]) -> Source:
    """From the keys `pack` writes: a git commit, a source folder, a direct URL or path."""
    url = str(entry.get("url", ""))
    if "commit" in entry:
        return "git"
    if entry.get("source_folder"):
        return "folder"
    plain = url.removeprefix("direct+")
    if plain.startswith("ensurepip:"):
        return "interpreter"
    if plain.startswith("file:") or "://" not in plain:
        return "file"
    return "url" if url.startswith("direct+") else "index"


def license_of_metadata(text: str) -> str | None:
    """The licence a distribution's METADATA declares: License-Expression (PEP 639), else a
    short License field, else the names its ``License ::`` classifiers give."""
    headers = HeaderParser().parsestr(text)
    expression = str(headers.get("License-Expression") or "").strip()
    if expression:
        return expression
    declared = str(headers.get("License") or "").strip()
    short = "\n" not in declared and len(declared) <= _LONG_LICENSE
    if declared and short and declared.upper() not in {"UNKNOWN", "NONE"}:
        return declared
    names = [
        str(c).split("::")[-1].strip()
        for c in headers.get_all("Classifier") or []
        if str(c).startswith("License ::") and str(c).count("::") >= 2
    ]
    return "; ".join(names) if names else None


def wheel_facts(entry: Mapping[str, object], wheel: Path) -> dict[str, object]:
    """Source and licence of a PyPI entry whose wheel is not installed (a pixi-pack archive)."""
    license_text: str | None = None
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if n.count("/") == 1]
            name = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
            if name is not None:
                license_text = license_of_metadata(archive.read(name).decode("utf-8", "replace"))
    except (zipfile.BadZipFile, OSError):
        pass  # the file is packed as locked; only its licence stays unknown
    return {"source": pypi_source(entry), "license": license_text}


def describe_installed(
    staged: StagedPrefix, inventory: Sequence[Mapping[str, object]]
) -> list[dict[str, object]]:
    """The inventory with each package's source, licence, installed size and file count added.

    Keys an entry already has are kept as they are.
    """
    conda = _conda_records(staged.path)
    dists = _dist_infos(site_packages(staged))
    described: list[dict[str, object]] = []
    for entry in inventory:
        name = str(entry.get("name", ""))
        facts: dict[str, object] = {}
        if entry.get("kind") == "conda" and name in conda:
            facts = _conda_facts(staged.path, entry, conda[name])
        elif entry.get("kind") == "pypi":
            facts = {"source": pypi_source(entry)}
            dist_info = dists.get(canonicalize_name(name))
            if dist_info is not None:
                facts |= _dist_info_facts(dist_info)
        described.append({**facts, **entry})
    return described


def _conda_records(root: Path) -> dict[str, dict[str, object]]:
    """conda-meta's records by package name."""
    records: dict[str, dict[str, object]] = {}
    for path in sorted((root / "conda-meta").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            records[data["name"]] = data
    return records


def _conda_facts(
    root: Path, entry: Mapping[str, object], record: Mapping[str, object]
) -> dict[str, object]:
    listed = record.get("files")
    files = [f for f in listed if isinstance(f, str)] if isinstance(listed, list) else []
    channel = record.get("channel")
    channel_url = channel.rstrip("/") if isinstance(channel, str) and channel else None
    url, subdir = str(entry.get("url", "")), str(entry.get("subdir", ""))
    return {
        "md5": record.get("md5"),
        "license": record.get("license"),
        **_origin(url, channel_url, subdir),
        "installed_files": len(files),
        "installed_size": _size_of(root, files),
    }


def _dist_infos(site: Path) -> dict[str, Path]:
    """The ``*.dist-info`` folders of site-packages, by canonical distribution name."""
    found: dict[str, Path] = {}
    if site.is_dir():
        for folder in sorted(site.glob("*.dist-info")):
            name = folder.name.removesuffix(".dist-info").rsplit("-", 1)[0]
            found[canonicalize_name(name)] = folder
    return found


def _dist_info_facts(dist_info: Path) -> dict[str, object]:
    metadata = dist_info / "METADATA"
    facts: dict[str, object] = {}
    if metadata.is_file():
        text = metadata.read_text(encoding="utf-8", errors="replace")
        facts["license"] = license_of_metadata(text)
    record = dist_info / "RECORD"
    if record.is_file():
        lines = io.StringIO(record.read_text(encoding="utf-8"))
        rows = [row[0] for row in csv.reader(lines) if row]
        facts["installed_files"] = len(rows)
        facts["installed_size"] = _size_of(dist_info.parent, rows)
    return facts


def _size_of(base: Path, relative: Iterable[str]) -> int:
    """Bytes of the files named relative to `base` (as lstat sees them; missing ones count 0)."""
    total = 0
    for name in relative:
        path = os.path.normpath(base / name)
        try:
            total += os.lstat(path).st_size
        except OSError:
            continue
    return total

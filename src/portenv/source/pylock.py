"""The entries of a PEP 751 pylock.toml for one target, as PypiPackages.

A package entry names its files in one of five ways: index `wheels` (+ an `sdist`), an
`archive` (a direct URL or a local wheel or sdist), a local `directory`, or a `vcs` checkout.
Relative paths are relative to the lock file's folder; they are made absolute here, since the
lock uv writes for a resolution lives in a scratch folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from packaging.markers import InvalidMarker, Marker
from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename
from tomlkit.exceptions import TOMLKitError

from portenv.errors import InputError, ResolveError
from portenv.model import PypiKind, PypiPackage

__all__ = ["LockedFiles", "folder_version", "for_target", "package_of"]


@dataclass(frozen=True)
class LockedFiles:
    """How to read one lock's entries: its folder, and what the target's tags rank."""

    base: Path
    """The lock file's folder: relative paths start there."""
    order: Mapping[Tag, int]
    target: str
    """`CPython 3.12 on linux-64`, for messages."""
    pinned: frozenset[str] | None = None
    """For a fresh resolution, the names whose hash the user gave: uv hashes every direct
    file itself, and a hash nobody asked for is not a pin (the file is hashed when fetched).
    None for a lock, whose hashes all hold."""


def for_target(
    entries: Sequence[dict[str, Any]], environment: Mapping[str, str], where: str, groups: Any
) -> list[dict[str, Any]]:
    """The entries whose marker holds on the target; one version per package."""
    context: dict[str, str | AbstractSet[str]] = {**environment, "extras": frozenset()}
    context["dependency_groups"] = frozenset(groups or ())
    chosen: dict[str, dict[str, Any]] = {}
    for entry in entries:
        marker = entry.get("marker")
        try:
            if marker and not Marker(str(marker)).evaluate(context, context="lock_file"):
                continue
        except InvalidMarker as exc:
            msg = f"{where}: invalid marker for {entry.get('name')}: {marker!r}"
            raise InputError(msg, hint="fix or regenerate the lock file") from exc
        name = canonicalize_name(str(entry["name"]))
        if name in chosen:
            versions = f"{chosen[name].get('version')} and {entry.get('version')}"
            msg = f"{where} has two versions of {entry['name']} for the target: {versions}"
            raise ResolveError(msg, hint="regenerate the lock file")
        chosen[name] = entry
    return list(chosen.values())


def _pick_wheel(
    wheels: Sequence[dict[str, Any]], order: Mapping[Tag, int]
) -> dict[str, Any] | None:
    best: tuple[int, dict[str, Any]] | None = None
    for wheel in wheels:
        ranks = [order[t] for t in parse_wheel_filename(_file_name(wheel))[3] if t in order]
        if ranks and (best is None or min(ranks) < best[0]):
            best = (min(ranks), wheel)
    return None if best is None else best[1]


def _file_name(item: Mapping[str, Any]) -> str:
    location = str(item.get("name") or item.get("url") or item.get("path") or "")
    return location.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def _location(item: Mapping[str, Any], files: LockedFiles, *, direct: bool) -> str:
    """A URL (`direct+` for a direct reference), or an absolute local path."""
    if item.get("url"):
        return f"direct+{item['url']}" if direct else str(item["url"])
    path = str(item.get("path") or "")
    return os.path.normpath(files.base / path)


def _label(entry: Mapping[str, Any]) -> str:
    version = str(entry.get("version") or "")
    return f"{entry['name']} {version}" if version else str(entry["name"])


def _size(item: Mapping[str, Any]) -> int | None:
    size = item.get("size")
    return size if isinstance(size, int) else None


def folder_version(folder: Path) -> str:
    """A local project's static `[project] version`, or "" (dynamic, or not readable)."""
    try:
        document = tomlkit.parse((folder / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, TOMLKitError):
        return ""
    project = document.unwrap().get("project")
    version = project.get("version") if isinstance(project, dict) else None
    return version if isinstance(version, str) else ""


def _unsupported(entry: Mapping[str, Any], what: str) -> ResolveError:
    msg = f"{_label(entry)}: the lock builds it from {what}, which portenv cannot pack"
    return ResolveError(msg, hint="build a wheel of it and require that file instead")


def _directory(entry: Mapping[str, Any], files: LockedFiles) -> PypiPackage:
    directory = entry["directory"]
    path = Path(_location(directory, files, direct=False)) / str(directory.get("subdirectory", ""))
    version = str(entry.get("version") or "") or folder_version(path)
    kind: PypiKind = "editable" if directory.get("editable") else "path"
    return PypiPackage(str(entry["name"]), version, os.path.normpath(path), kind, None)


def _archive(entry: Mapping[str, Any], files: LockedFiles) -> PypiPackage:
    archive = entry["archive"]
    if archive.get("subdirectory"):
        raise _unsupported(entry, f"a subdirectory of an archive ({archive['subdirectory']})")
    kind: PypiKind = "wheel" if _file_name(archive).endswith(".whl") else "sdist"
    sha256 = archive.get("hashes", {}).get("sha256")
    if files.pinned is not None and canonicalize_name(str(entry["name"])) not in files.pinned:
        sha256 = None
    url = _location(archive, files, direct=True)
    version = str(entry.get("version") or "")
    return PypiPackage(str(entry["name"]), version, url, kind, sha256, size=_size(archive))


def _vcs(entry: Mapping[str, Any], files: LockedFiles) -> PypiPackage:
    vcs = entry["vcs"]
    if vcs.get("type") != "git":
        raise _unsupported(entry, f"a {vcs.get('type')} repository (portenv builds git ones)")
    if vcs.get("subdirectory"):
        raise _unsupported(entry, f"a subdirectory of a git repository ({vcs['subdirectory']})")
    url = vcs.get("url") or Path(_location(vcs, files, direct=False)).as_uri()
    location = f"git+{url}#{vcs.get('commit-id', '')}"
    return PypiPackage(str(entry["name"]), str(entry.get("version") or ""), location, "git", None)


def _no_file(entry: Mapping[str, Any], files: LockedFiles) -> ResolveError:
    """Why an entry has nothing to install, naming the package and its version."""
    wheels = entry.get("wheels", [])
    if not wheels:
        msg = f"{_label(entry)}: the lock names no file for it (wheel, sdist, archive, folder, vcs)"
        return ResolveError(msg, hint="regenerate the lock file")
    tags = sorted({str(t.platform) for w in wheels for t in parse_wheel_filename(_file_name(w))[3]})
    msg = (
        f"{_label(entry)} has no wheel for {files.target} (its {len(wheels)} wheels are for "
        f"{', '.join(tags)}) and no sdist to build"
    )
    return ResolveError(msg, hint="pin a version that publishes a wheel for the target")


def package_of(entry: Mapping[str, Any], files: LockedFiles) -> PypiPackage:
    """The package one entry stands for, with the best-fitting file for the target."""
    for key, read in (("directory", _directory), ("archive", _archive), ("vcs", _vcs)):
        if key in entry:
            return read(entry, files)
    name, version = str(entry["name"]), str(entry.get("version") or "")
    wheel = _pick_wheel(entry.get("wheels", []), files.order)
    chosen = wheel or entry.get("sdist")
    if chosen is None:
        raise _no_file(entry, files)
    return PypiPackage(
        name,
        version,
        _location(chosen, files, direct=False),
        "wheel" if wheel else "sdist",
        chosen.get("hashes", {}).get("sha256"),
        size=_size(chosen),
    )

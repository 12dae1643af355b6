"""Resolve an environment's PyPI dependencies for one target platform and its solved Python.

uv resolves (``uv pip compile --format pylock.toml``) with the target's platform and full
Python version, so environment markers are evaluated for the target, not for this machine.
Pins of the previous lock are handed to uv as an existing pylock.toml, which uv prefers
while they still fit. pixi.lock also records each package's ``requires_dist`` and
``requires_python``: they come from the index's PEP 658 metadata file, or from the
distribution itself (downloaded into portenv's verified cache) when the index has none.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import tomlkit
from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename

from portenv import _rattler
from portenv._uv import python_platform, run_uv
from portenv.errors import FetchError, ResolveError
from portenv.fetch import Download, fetch_file
from portenv.project.specs import PypiRequirement
from portenv.project.targets import PypiTarget, ordered_tags

__all__ = ["PypiDist", "dist_metadata", "resolve"]

PypiDist = _rattler.PypiEntry
_TIMEOUT_S = 60
_METADATA = re.compile(r"[^/]+\.dist-info/METADATA")


def _requirements_file(requirements: Sequence[PypiRequirement]) -> str:
    lines = []
    for requirement in requirements:
        if requirement.editable:
            lines.append(f"-e {requirement.pep508.split(' @ ', 1)[1]}")
        else:
            lines.append(requirement.pep508)
    return "\n".join(lines) + "\n"


def _preferences_file(preferences: Sequence[PypiDist]) -> str:
    """A pylock.toml of the previous pins: uv keeps them where they still fit."""
    document = tomlkit.document()
    document["lock-version"] = "1.0"
    document["created-by"] = "portenv"
    packages = tomlkit.aot()
    for dist in preferences:
        entry = tomlkit.table()
        entry["name"] = dist.key
        entry["version"] = dist.version
        packages.append(entry)
    document["packages"] = packages
    return tomlkit.dumps(document)


def _key(name: str) -> str:
    return str(canonicalize_name(name))


def _run_uv(folder: Path, target: PypiTarget, indexes: Sequence[str]) -> dict[str, Any]:
    platform = python_platform(target.platform.subdir, target.virtual("__glibc"))
    argv = ["pip", "compile", "requirements.in", "-o", "pylock.toml"]
    argv += ["--constraint", "constraints.txt"]
    argv += ["--format", "pylock.toml", "--no-header", "--quiet", "--no-config"]
    argv += ["--python-version", target.python_version, "--python-platform", platform]
    if indexes:
        argv += ["--index-url", indexes[0]]
        for extra in indexes[1:]:
            argv += ["--extra-index-url", extra]
    osx = target.virtual("__osx")
    done = run_uv(argv, cwd=folder, env={"MACOSX_DEPLOYMENT_TARGET": osx} if osx else None)
    if done.returncode != 0:
        explanation = done.stderr.strip() or "uv failed without a message"
        msg = f"cannot resolve the PyPI dependencies for {target.platform.name}:\n{explanation}"
        raise ResolveError(msg, hint="relax or remove the requirement the explanation names")
    parsed: dict[str, Any] = tomlkit.parse((folder / "pylock.toml").read_text()).unwrap()
    return parsed


@dataclass(frozen=True)
class _Artifact:
    """The one file (or source) of a resolved package the lock will point at."""

    name: str
    version: str
    location: str
    sha256: str | None
    local: Path | None = None


def _choose(package: Mapping[str, Any], target: PypiTarget, tags: list[Tag]) -> _Artifact:
    name, version = str(package["name"]), str(package["version"])
    rank = {tag: index for index, tag in enumerate(tags)}
    best: tuple[int, Mapping[str, Any]] | None = None
    for wheel in package.get("wheels", []):
        file_name = str(wheel.get("name") or wheel["url"].rsplit("/", 1)[-1])
        fits = [rank[t] for t in parse_wheel_filename(file_name)[3] if t in rank]
        if fits and (best is None or min(fits) < best[0]):
            best = (min(fits), wheel)
    chosen = best[1] if best else package.get("sdist") or package.get("archive")
    if chosen is not None:
        return _artifact(name, version, chosen)
    if "vcs" in package:
        vcs = package["vcs"]
        return _Artifact(name, version, f"git+{vcs['url']}#{vcs['commit-id']}", None)
    if "directory" in package:
        path = Path(str(package["directory"]["path"]))
        return _Artifact(name, version, str(path), None, path)
    python = f"CPython {target.python_version}"
    msg = f"no file of {name} {version} fits {target.platform.name} ({python})"
    raise ResolveError(msg, hint="pin another version, or add the package from conda")


def _artifact(name: str, version: str, entry: Mapping[str, Any]) -> _Artifact:
    sha256 = entry.get("hashes", {}).get("sha256")
    if "path" in entry:
        path = Path(str(entry["path"]))
        return _Artifact(name, version, str(path), sha256, path)
    return _Artifact(name, version, str(entry["url"]), sha256)


def resolve(
    requirements: Sequence[PypiRequirement],
    target: PypiTarget,
    *,
    indexes: Sequence[str],
    cache: Path,
    preferences: Sequence[PypiDist] = (),
    provided: Mapping[str, str] | None = None,
) -> tuple[PypiDist, ...]:
    """The PyPI packages `requirements` need on `target`, as the lock records them.

    `provided` (name -> version) are installed by conda already: uv must pick exactly those
    versions, and they are left out of the result.
    """
    if not requirements:
        return ()
    given = dict(provided or {})
    with tempfile.TemporaryDirectory(prefix="portenv-uv-") as tmp:
        folder = Path(tmp)
        (folder / "requirements.in").write_text(_requirements_file(requirements))
        constraints = "".join(f"{name}=={version}\n" for name, version in sorted(given.items()))
        (folder / "constraints.txt").write_text(constraints)
        if preferences:
            (folder / "pylock.toml").write_text(_preferences_file(preferences))
        resolved = _run_uv(folder, target, indexes)
    tags = ordered_tags(target)
    packages = resolved.get("packages", [])
    artifacts = [_choose(p, target, tags) for p in packages if _key(p["name"]) not in given]
    locations: dict[str, str] = {
        canonicalize_name(r.name): r.location for r in requirements if r.location
    }
    with ThreadPoolExecutor(max_workers=8) as pool:
        dists = list(pool.map(lambda a: _dist(a, locations, cache), artifacts))
    return tuple(sorted(dists, key=lambda d: d.key))


def _dist(artifact: _Artifact, locations: Mapping[str, str], cache: Path) -> PypiDist:
    metadata = _metadata(artifact, cache)
    location = locations.get(canonicalize_name(artifact.name), artifact.location)
    return PypiDist(
        name=artifact.name,
        version=artifact.version,
        location=location,
        sha256=artifact.sha256,
        requires_dist=tuple(metadata.get_all("Requires-Dist") or ()),
        requires_python=metadata.get("Requires-Python"),
    )


def _metadata(artifact: _Artifact, cache: Path) -> Message:
    """Core metadata: cached by hash, else PEP 658's .metadata, else from the file itself."""
    if artifact.local is not None:
        return _local_metadata(artifact.local)
    stored = cache / "pypi-metadata" / f"{artifact.sha256}.METADATA" if artifact.sha256 else None
    if stored is not None and stored.is_file():
        return HeaderParser().parsestr(stored.read_text(encoding="utf-8"))
    text = _pep658(artifact.location) if artifact.location.endswith(".whl") else None
    if text is None:
        text = _downloaded_metadata(artifact, cache)
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_text(text, encoding="utf-8")
    return HeaderParser().parsestr(text)


def _pep658(url: str) -> str | None:
    request = urllib.request.Request(url + ".metadata", headers={"User-Agent": "portenv"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            data: bytes = response.read()
    except (urllib.error.URLError, OSError, TimeoutError):
        return None
    return data.decode("utf-8", errors="replace")


def _downloaded_metadata(artifact: _Artifact, cache: Path) -> str:
    file_name = artifact.location.split("#", 1)[0].rsplit("/", 1)[-1]
    algorithm = "sha256" if artifact.sha256 else None
    item = Download(artifact.name, artifact.location, file_name, "pypi", algorithm, artifact.sha256)
    path, _sha = fetch_file(item, cache, lambda _amount: None)
    return _read_metadata(path)


def _local_metadata(path: Path) -> Message:
    if path.is_dir():
        return Message()
    return HeaderParser().parsestr(_read_metadata(path))


def _read_metadata(path: Path) -> str:
    """``*.dist-info/METADATA`` of a wheel or ``<dir>/PKG-INFO`` of an sdist."""
    try:
        if path.name.endswith(".whl"):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if _METADATA.fullmatch(n)]
                return archive.read(names[0]).decode("utf-8") if names else ""
        with tarfile.open(path) as archive:
            members = [m for m in archive.getmembers() if re.fullmatch(r"[^/]+/PKG-INFO", m.name)]
            handle = archive.extractfile(members[0]) if members else None
            return handle.read().decode("utf-8") if handle else ""
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        msg = f"cannot read the metadata of {path.name}: {exc}"
        raise FetchError(msg, hint="check the file, or re-download it") from exc


def dist_metadata(path: Path) -> Message:
    """Core metadata of a local wheel or sdist (name, version, requirements)."""
    return HeaderParser().parsestr(_read_metadata(path))

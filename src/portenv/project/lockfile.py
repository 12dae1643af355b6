"""Read pixi.lock into a LockState, and write one with py-rattler plus what it cannot write.

py-rattler 0.28 writes the lock (format v7, the version pixi writes today) but its
``add_pypi_package`` takes only name, version and location. pixi records three more fields
per PyPI package and one per environment, so they are added to rattler's output text:

* ``sha256`` - pixi verifies downloads with it (portenv's fetch does too);
* ``requires_dist`` / ``requires_python`` - pixi's satisfiability check walks them to
  decide whether the lock still fits the manifest; without them pixi re-resolves;
* ``indexes`` (per environment with PyPI packages) - pixi compares it with the manifest's
  index URLs and re-locks when they differ.

The text is then read and written again by rattler, so every field ends up in rattler's
own order and quoting, and read back to prove nothing was lost. Conda packages from
``file://`` channels inside the project are written as ``./`` paths (rattler_lock accepts
relative locations), so the project folder can move; their absolute ``channel:`` field is
dropped for the same reason.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from portenv import _rattler
from portenv.errors import LockFileError

__all__ = ["SUPPORTED_LOCK_VERSIONS", "LockState", "lock_version", "read_state", "write_state"]

SUPPORTED_LOCK_VERSIONS = range(4, 8)
_VERSION_LINE = re.compile(rb"^version:\s*(\d+)\s*$", re.MULTILINE)
_ENTRY = re.compile(r"^- (conda|pypi|conda_source): (.*)$")
_LOCATION = re.compile(r"^(\s*- conda: )(.*)$")


@dataclass(frozen=True)
class LockState:
    """A whole lock: platforms, and per environment its packages and PyPI indexes."""

    platforms: tuple[_rattler.LockedPlatform, ...]
    environments: dict[str, _rattler.LockedEnvironmentContent]
    indexes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def platform(self, name: str) -> _rattler.LockedPlatform | None:
        """A platform of the lock by name."""
        return next((p for p in self.platforms if p.name == name), None)


def lock_version(lock: Path) -> int | None:
    """The lock's format version (a top-level ``version:`` key; v1 puts it last)."""
    match = _VERSION_LINE.search(lock.read_bytes())
    return int(match.group(1)) if match else None


def read_state(path: Path) -> LockState:
    """Read a lock (v4 to v7) with rattler; relative package paths resolve against its folder."""
    version = lock_version(path)
    if version is not None and version not in SUPPORTED_LOCK_VERSIONS:
        msg = f"{path} is lock format v{version}: portenv reads v4 to v7"
        raise LockFileError(msg, hint="delete it and run `portenv lock` to write a new one")
    platforms, environments = _rattler.read_lock(path)
    indexes = _indexes(path.read_text(encoding="utf-8"))
    return LockState(tuple(platforms), environments, indexes)


def _indexes(text: str) -> dict[str, tuple[str, ...]]:
    """``environments.<name>.indexes`` (py-rattler does not expose them)."""
    found: dict[str, list[str]] = {}
    env: str | None = None
    in_environments = in_indexes = False
    for line in text.splitlines():
        if not line.startswith(" "):
            in_environments = line.rstrip() == "environments:"
            continue
        if not in_environments:
            continue
        if re.match(r"^  [^ ]", line):
            env = _unquote(line.strip().removesuffix(":"))
            continue
        if re.match(r"^    [^ -]", line):
            in_indexes = line.strip() == "indexes:"
            continue
        if in_indexes and env and line.startswith("    - "):
            found.setdefault(env, []).append(_unquote(line[6:].strip()))
    return {name: tuple(urls) for name, urls in found.items()}


def _unquote(value: str) -> str:
    """A YAML scalar as rattler writes one: plain, 'single' or "double" quoted."""
    if value.startswith("'") and value.endswith("'"):
        return value[1:-1].replace("''", "'")
    if value.startswith('"') and value.endswith('"'):
        loaded: str = json.loads(value)
        return loaded
    return value


def write_state(path: Path, state: LockState, root: Path) -> None:
    """Write `state` to `path` atomically; the old lock stays if anything fails."""
    if any(any(env.sources.values()) for env in state.environments.values()):
        msg = f"{path} holds source packages (pixi-build), which py-rattler cannot write"
        raise LockFileError(msg, hint="lock this project with pixi")
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".pixi.lock.")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        environments = {name: state.environments[name] for name in sorted(state.environments)}
        _rattler.write_lock(tmp, list(state.platforms), environments)
        text = tmp.read_text(encoding="utf-8")
        text = _add_pypi_fields(text, state)
        text = _add_indexes(text, state)
        text = _relativize(text, root.resolve())
        tmp.write_text(text, encoding="utf-8")
        _rattler.rewrite_lock(tmp)
        _verify(tmp, state)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _entries(lines: list[str]) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, kind, location) of each entry of the top-level ``packages:`` list."""
    start = next((i + 1 for i, line in enumerate(lines) if line == "packages:"), len(lines))
    index = start
    while index < len(lines):
        match = _ENTRY.match(lines[index])
        end = index + 1
        while end < len(lines) and lines[end].startswith("  "):
            end += 1
        if match:
            yield index, end, match.group(1), _unquote(match.group(2).strip())
        index = end


def _pypi_fields(dist: _rattler.PypiEntry) -> list[str]:
    lines = [f"  sha256: {dist.sha256}"] if dist.sha256 else []
    if dist.requires_dist:
        lines.append("  requires_dist:")
        lines += [f"  - {json.dumps(r)}" for r in dist.requires_dist]
    if dist.requires_python:
        lines.append(f"  requires_python: {json.dumps(dist.requires_python)}")
    return lines


def _add_pypi_fields(text: str, state: LockState) -> str:
    by_location: dict[str, _rattler.PypiEntry] = {}
    for env in state.environments.values():
        for dists in env.pypi.values():
            by_location.update((d.location, d) for d in dists)
    lines = text.splitlines()
    inserts: list[tuple[int, list[str]]] = []
    for start, end, kind, location in _entries(lines):
        dist = by_location.get(location)
        if kind == "pypi" and dist is not None:
            version = next((i for i in range(start, end) if lines[i].startswith("  version:")), end)
            inserts.append((min(version + 1, end), _pypi_fields(dist)))
    for at, new in reversed(inserts):
        lines[at:at] = new
    return "\n".join(lines) + "\n"


def _add_indexes(text: str, state: LockState) -> str:
    """``indexes:`` after an environment's channels, where it has PyPI packages."""
    lines = text.splitlines()
    env: str | None = None
    out: list[str] = []
    in_environments = False
    for line in lines:
        if not line.startswith(" "):
            in_environments = line.rstrip() == "environments:"
        elif in_environments and re.match(r"^  [^ ]", line):
            env = _unquote(line.strip().removesuffix(":"))
        elif in_environments and env and line.strip() == "packages:" and _has_pypi(state, env):
            indexes = state.indexes.get(env, ())
            out += ["    indexes:", *(f"    - {json.dumps(url)}" for url in indexes)]
        out.append(line)
    return "\n".join(out) + "\n"


def _has_pypi(state: LockState, env: str) -> bool:
    content = state.environments.get(env)
    return bool(content and state.indexes.get(env) and any(content.pypi.values()))


def _inside(location: str, root: Path) -> str | None:
    if not location.startswith("/"):
        return None
    try:
        return "./" + Path(location).relative_to(root).as_posix()
    except ValueError:
        return None


def _relativize(text: str, root: Path) -> str:
    """Conda packages under `root` become ``./`` paths; their absolute channel goes."""
    lines = text.splitlines()
    drop: set[int] = set()
    for start, end, kind, location in _entries(lines):
        if kind == "conda" and _inside(location, root) is not None:
            drop.update(i for i in range(start, end) if lines[i].startswith("  channel: "))
    out = []
    for index, line in enumerate(lines):
        if index in drop:
            continue
        match = _LOCATION.match(line)
        relative = _inside(_unquote(match.group(2).strip()), root) if match else None
        out.append(f"{match.group(1)}{json.dumps(relative)}" if match and relative else line)
    return "\n".join(out) + "\n"


def _pypi_digest(dist: _rattler.PypiEntry) -> tuple[object, ...]:
    """A PyPI entry up to rattler's re-spelling of requirement strings."""
    try:
        requires_python = str(SpecifierSet(dist.requires_python or ""))
    except InvalidSpecifier:
        requires_python = dist.requires_python or ""
    return (dist.key, dist.location, dist.sha256, len(dist.requires_dist), requires_python)


def _digest(environments: Mapping[str, _rattler.LockedEnvironmentContent]) -> dict[str, object]:
    """What must survive a write: conda files and the PyPI fields, per env and platform."""
    return {
        name: {
            "conda": {p: sorted(c.url for c in pkgs) for p, pkgs in env.conda.items() if pkgs},
            "pypi": {p: sorted(map(_pypi_digest, d)) for p, d in env.pypi.items() if d},
        }
        for name, env in environments.items()
    }


def _verify(path: Path, state: LockState) -> None:
    """Read the written lock back: a field rattler dropped or mangled is a bug, not a lock."""
    _platforms, read = _rattler.read_lock(path)
    if _digest(read) != _digest(state.environments):
        msg = f"the lock written to {path} does not read back as written"
        raise LockFileError(msg, hint="this is a bug in portenv: please report it")

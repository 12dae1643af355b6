"""`init`, `add`, `remove` and `lock`: one function per command, each taking a frozen request.

A command edits the manifest in memory, re-solves what became stale and only then writes,
lock first and manifest second; if either write fails the other file is put back. An
unsolvable spec therefore leaves both files byte for byte as they were.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from packaging.utils import canonicalize_name

from portenv import _rattler
from portenv.author.solve import SolveContext, relock
from portenv.errors import InputError, LockFileError, ManifestError
from portenv.project.check import Difference, differences, lock_state
from portenv.project.environments import environments
from portenv.project.lockfile import LockState, write_state
from portenv.project.manifest import DepKind, Manifest, Where, write_text_atomic
from portenv.project.specs import (
    conda_pin,
    conda_value,
    inline_table,
    parse_pypi,
    pypi_pin,
    pypi_value,
)
from portenv.reporting import NullReporter, Reporter

__all__ = [
    "AddRequest",
    "AddResult",
    "LockRequest",
    "LockResult",
    "RemoveRequest",
    "RemoveResult",
    "add",
    "default_cache",
    "lock",
    "remove",
]


def default_cache() -> Path:
    """The pack cache: packages fetched for `install` are the ones `pack` reuses."""
    from portenv.pack import default_cache as pack_cache

    return pack_cache()


@dataclass(frozen=True)
class AddRequest:
    """`portenv add SPEC... [--pypi] [-p PLATFORM]... [--feature F]`."""

    project: Path
    specs: tuple[str, ...]
    pypi: bool = False
    platforms: tuple[str, ...] = ()
    feature: str | None = None
    cache: Path | None = None


@dataclass(frozen=True)
class AddResult:
    """What was written: the manifest entries (``name = spec``) and whether the lock moved."""

    manifest: Path
    lock: Path
    added: tuple[str, ...]
    lock_changed: bool


@dataclass(frozen=True)
class RemoveRequest:
    """`portenv remove NAME... [--pypi] [-p PLATFORM]... [--feature F]`."""

    project: Path
    names: tuple[str, ...]
    pypi: bool = False
    platforms: tuple[str, ...] = ()
    feature: str | None = None
    cache: Path | None = None


@dataclass(frozen=True)
class RemoveResult:
    """The names removed and whether the lock moved."""

    manifest: Path
    lock: Path
    removed: tuple[str, ...]
    lock_changed: bool


@dataclass(frozen=True)
class LockRequest:
    """`portenv lock [--check]`."""

    project: Path
    check: bool = False
    cache: Path | None = None


@dataclass(frozen=True)
class LockResult:
    """The lock, whether it was rewritten, and what had differed from the manifest."""

    lock: Path
    changed: bool
    differences: tuple[str, ...]


_SELECTORS = ("linux", "osx", "win", "unix")


def _wheres(manifest: Manifest, feature: str | None, platforms: Sequence[str]) -> list[Where]:
    """The tables to edit; a platform must be one of the workspace's (or a family)."""
    known = {p.name for env in environments(manifest) for p in env.platforms}
    known |= {p.subdir for env in environments(manifest) for p in env.platforms}
    for platform in platforms:
        if platform not in known and platform not in _SELECTORS:
            msg = f"platform {platform} is not a platform of the workspace"
            hint = f"use one of: {', '.join(sorted(known))} (or add it to [workspace] platforms)"
            raise ManifestError(msg, hint=hint)
    return [Where(feature, p) for p in platforms] or [Where(feature)]


@dataclass
class _Session:
    """One command's manifest, the lock it started from and the lock it will write."""

    manifest: Manifest
    old: LockState | None
    context: SolveContext
    state: LockState | None = None
    stale: tuple[Difference, ...] = ()

    @classmethod
    def open(cls, project: Path, cache: Path | None, reporter: Reporter | None) -> _Session:
        manifest = Manifest.from_path(project)
        context = SolveContext(manifest.root, cache or default_cache(), reporter or NullReporter())
        return cls(manifest, lock_state(manifest), context)

    @property
    def lock_path(self) -> Path:
        return self.manifest.root / "pixi.lock"

    def solve(self) -> LockState | None:
        """Re-solve what the (edited) manifest made stale; None when nothing is."""
        envs = environments(self.manifest)
        self.stale = tuple(differences(envs, self.old))
        if self.stale:
            self.state = relock(envs, self.old, self.stale, self.context)
        return self.state

    def commit(self) -> None:
        """Write the lock, then the manifest; a failure puts the first back."""
        old_lock = self.lock_path.read_bytes() if self.lock_path.is_file() else None
        if self.state is not None:
            write_state(self.lock_path, self.state, self.manifest.root)
        try:
            if self.manifest.changed:
                self.manifest.write()
        except BaseException:
            if old_lock is None:
                self.lock_path.unlink(missing_ok=True)
            else:
                write_text_atomic(self.lock_path, old_lock.decode("utf-8"))
            raise


def _parsed(spec: str, kind: DepKind, root: Path) -> tuple[str, Any, bool]:
    """(name, manifest value, whether the version must be pinned after solving)."""
    if kind == "conda":
        parts = _rattler.parse_spec(spec)
        bare = parts.version is None and parts.build is None
        return parts.name, conda_value(parts), bare
    requirement = parse_pypi(spec)
    bare = not requirement.specifier and not requirement.url
    return requirement.name, pypi_value(requirement, root), bare


def add(request: AddRequest, reporter: Reporter | None = None) -> AddResult:
    """Add dependencies to the manifest and lock them; nothing is written if solving fails."""
    if not request.specs:
        msg = "nothing to add"
        raise ManifestError(msg, hint="name at least one package, e.g. `portenv add python=3.12`")
    session = _Session.open(request.project, request.cache, reporter)
    kind: DepKind = "pypi" if request.pypi else "conda"
    wheres = _wheres(session.manifest, request.feature, request.platforms)
    parsed = [_parsed(s, kind, session.manifest.root) for s in request.specs]
    for where in wheres:
        for name, value, _bare in parsed:
            session.manifest.set_dependency(kind, name, value, where)
    state = session.solve()
    for name, _value, bare in parsed:
        if bare:
            pin = _pin(kind, name, state or session.old, session.manifest, wheres)
            for where in wheres:
                session.manifest.set_dependency(kind, name, pin, where)
    session.commit()
    added = tuple(_entry(session.manifest, kind, name, wheres[0]) for name, _v, _b in parsed)
    return AddResult(session.manifest.path, session.lock_path, added, state is not None)


def _entry(manifest: Manifest, kind: DepKind, name: str, where: Where) -> str:
    value = manifest.dependencies(kind, where).get(name)
    if value is None:  # a pyproject keeps it in [project].dependencies
        lines = [str(line) for line in manifest.project_table().get("dependencies", [])]
        wanted = canonicalize_name(name)
        return next((line for line in lines if _line_name(line) == wanted), name)
    rendered = inline_table(value) if isinstance(value, dict) else tomlkit.item(value)
    return f"{name} = {rendered.as_string()}"


def _line_name(line: str) -> str:
    try:
        return canonicalize_name(parse_pypi(line).name)
    except InputError:
        return ""


def _versions(
    kind: DepKind, name: str, state: LockState | None, manifest: Manifest, wheres: list[Where]
) -> Iterator[str]:
    """Versions of `name` in the environments that use the edited feature."""
    feature = wheres[0].feature
    key = canonicalize_name(name) if kind == "pypi" else name
    for env in environments(manifest):
        content = state.environments.get(env.name) if state else None
        if content is None or (feature is not None and feature not in env.features):
            continue
        tables: dict[str, Any] = dict(content.conda if kind == "conda" else content.pypi)
        for packages in tables.values():
            for package in packages:
                found = canonicalize_name(package.name) if kind == "pypi" else package.name
                if found == key:
                    yield str(package.version)


def _pin(
    kind: DepKind, name: str, state: LockState | None, manifest: Manifest, wheres: list[Where]
) -> str:
    """pixi's pin for a dependency added without a version, from the solved versions."""
    versions = list(_versions(kind, name, state, manifest, wheres))
    if not versions:
        return "*"
    return conda_pin(versions) if kind == "conda" else pypi_pin(versions)


def remove(request: RemoveRequest, reporter: Reporter | None = None) -> RemoveResult:
    """Remove dependencies from the manifest and re-lock; unknown names are refused."""
    session = _Session.open(request.project, request.cache, reporter)
    kind: DepKind = "pypi" if request.pypi else "conda"
    for where in _wheres(session.manifest, request.feature, request.platforms):
        for name in request.names:
            if not session.manifest.remove_dependency(kind, name, where):
                table = "PyPI dependency" if request.pypi else "dependency"
                msg = f"{name} is not a {table} of {where.describe()}"
                hint = "check the name (and --pypi, --feature, -p) against the manifest"
                raise ManifestError(msg, hint=hint)
    state = session.solve()
    session.commit()
    return RemoveResult(
        session.manifest.path, session.lock_path, tuple(request.names), state is not None
    )


def lock(request: LockRequest, reporter: Reporter | None = None) -> LockResult:
    """Bring pixi.lock up to date with the manifest; with `check`, only say what differs."""
    session = _Session.open(request.project, request.cache, reporter)
    if request.check:
        found = tuple(str(d) for d in differences(environments(session.manifest), session.old))
        if found:
            listing = "\n".join(f"  - {d}" for d in found)
            msg = f"{session.lock_path} does not satisfy {session.manifest.path.name}:\n{listing}"
            raise LockFileError(msg, hint="run `portenv lock` to update it")
        return LockResult(session.lock_path, False, ())
    state = session.solve()
    session.commit()
    return LockResult(session.lock_path, state is not None, tuple(str(d) for d in session.stale))

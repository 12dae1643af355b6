"""A pixi project (pixi.toml or pyproject.toml [tool.pixi] + pixi.lock) as a Plan."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.utils import canonicalize_name

from portenv import _rattler
from portenv.errors import InputError, LockFileError, PortenvError, ResolveError
from portenv.model import CondaPackage, Plan, PypiPackage, Subdir
from portenv.platforms import SUBDIR_ARCH, host_subdir
from portenv.project.lockfile import SUPPORTED_LOCK_VERSIONS, lock_version
from portenv.project.manifest import find_manifest, pixi_table, read_manifest
from portenv.source.pypi import conflicts, decide, editable_notes

__all__ = ["PixiProject", "editable_names", "plan_pixi_project", "stale_lock_warnings"]


@dataclass(frozen=True)
class PixiProject:
    """Where a project's manifest and lock are."""

    manifest: Path
    lock: Path

    @property
    def root(self) -> Path:
        """The folder relative lock paths are resolved against."""
        return self.lock.parent

    @classmethod
    def from_path(cls, path: Path) -> PixiProject:
        """Find the manifest from a project folder or a manifest file."""
        manifest = find_manifest(path)
        lock = manifest.parent / "pixi.lock"
        if not lock.is_file():
            msg = f"no pixi.lock next to {manifest.name} in {manifest.parent}"
            raise LockFileError(msg, hint="create it with `pixi lock` or `portenv lock`")
        return cls(manifest, lock)


def _load_lock(path: Path) -> object:
    version = lock_version(path)
    if version is not None and version not in SUPPORTED_LOCK_VERSIONS:
        too = "old" if version < SUPPORTED_LOCK_VERSIONS.start else "new"
        msg = f"{path} is lock format v{version}, too {too}: portenv reads v4 to v7"
        fix = "re-lock with a current pixi (`pixi lock`) or `portenv lock`"
        raise LockFileError(msg, hint=fix if too == "old" else "upgrade portenv")
    return _rattler.load_lock(path)


def _select_platform(
    platforms: list[_rattler.LockedPlatform], wanted: str | None, env_name: str
) -> _rattler.LockedPlatform:
    if wanted is not None and not wanted.strip():
        msg = "the platform given with -p is empty"
        raise InputError(msg, hint="pass a platform of the lock such as linux-64, or leave out -p")
    name = wanted or host_subdir()
    for platform in platforms:
        if platform.name == name:
            return platform
    if wanted is None or wanted in SUBDIR_ARCH:
        for platform in platforms:
            if platform.subdir == name:
                return platform
    have = ", ".join(sorted(p.name for p in platforms)) or "none"
    msg = f"platform {name} is not in the lock for environment {env_name} (it has: {have})"
    raise ResolveError(msg, hint="add the platform to the manifest and re-lock, or pass -p")


def _glibc_of(virtual_packages: tuple[str, ...]) -> str | None:
    for spec in virtual_packages:
        name, _, rest = spec.partition("=")
        if name == "__glibc" and rest:
            return rest.split("=", 1)[0]
    return None


def _problems(
    subdir: str,
    conda: tuple[CondaPackage, ...],
    pypi: tuple[PypiPackage, ...],
    sources: tuple[str, ...],
) -> list[str]:
    problems: list[str] = []
    if subdir not in SUBDIR_ARCH:
        problems.append(f"platform {subdir} is not Linux: portenv packs for Linux targets only")
    if not any(p.name == "python" for p in conda):
        problems.append("no python package: portenv needs the environment's own python")
    problems.extend(
        f"conda package {s} is built from source: lock a built package instead" for s in sources
    )
    problems.extend(
        f"conda package {p.name} has no sha256 or md5 in the lock: re-lock"
        for p in conda
        if not p.sha256 and not p.md5
    )
    problems.extend(f"pypi package {p.name}: {p.reason}" for p in pypi if p.action == "refuse")
    problems.extend(conflicts(conda, pypi))
    return problems


def _python_version(conda: tuple[CondaPackage, ...]) -> tuple[int, int] | None:
    python = next((p for p in conda if p.name == "python"), None)
    if python is None:
        return None
    major, minor = python.version.split(".")[:2]
    return int(major), int(minor)


def _host_subdir() -> str | None:
    try:
        return host_subdir()
    except InputError:
        return None


def editable_names(manifest: Path) -> set[str]:
    """PyPI dependencies the manifest asks to install editable (the lock API does not say).

    Tables of the wrong type are passed over: the lock, not the manifest, is what is packed.
    """
    root = pixi_table(read_manifest(manifest)[1].unwrap(), manifest) or {}
    features = root.get("feature", {})
    tables = [root.get("pypi-dependencies", {})]
    if isinstance(features, Mapping):
        tables += [
            f.get("pypi-dependencies", {}) for f in features.values() if isinstance(f, Mapping)
        ]
    return {
        canonicalize_name(str(name))
        for table in tables
        if isinstance(table, Mapping)
        for name, spec in table.items()
        if isinstance(spec, Mapping) and spec.get("editable") is True
    }


def _decide_pypi(
    conda: tuple[CondaPackage, ...],
    pypi: tuple[PypiPackage, ...],
    subdir: str,
    skip: Iterable[str],
    editable: set[str],
) -> tuple[PypiPackage, ...]:
    pypi = tuple(
        replace(p, kind="editable") if canonicalize_name(p.name) in editable else p for p in pypi
    )
    python_version = _python_version(conda)
    if python_version is None:
        why = "no python package in the environment to install it for"
        return tuple(replace(p, action="refuse", reason=why) for p in pypi)
    host = _host_subdir()
    return tuple(
        decide(p, python_version=python_version, subdir=subdir, host_subdir=host, skip=skip)
        for p in pypi
    )


def plan_pixi_project(
    project: PixiProject,
    *,
    environment: str = "default",
    platform: str | None = None,
    skip_pypi: Iterable[str] = (),
) -> Plan:
    """Read the lock and list what packing `environment` for `platform` would take."""
    lock = _load_lock(project.lock)
    names = _rattler.environment_names(lock)
    if environment not in names:
        have = ", ".join(sorted(names)) or "none"
        msg = f"environment {environment} is not in {project.lock} (it has: {have})"
        raise ResolveError(msg, hint="pass one of them with -e")
    chosen = _select_platform(
        _rattler.environment_platforms(lock, environment), platform, environment
    )
    locked = _rattler.locked_environment(lock, environment, chosen.name, project.root)
    editable = editable_names(project.manifest)
    pypi = _decide_pypi(locked.conda, locked.pypi, chosen.subdir, skip_pypi, editable)
    problems = _problems(chosen.subdir, locked.conda, pypi, locked.source_packages)
    return Plan(
        project_dir=project.root,
        environment=environment,
        platform=chosen.name,
        subdir=Subdir(chosen.subdir),
        conda=locked.conda,
        pypi=pypi,
        problems=tuple(problems),
        lock_glibc=_glibc_of(chosen.virtual_packages),
        notes=editable_notes(pypi),
    )


def stale_lock_warnings(project: Path) -> tuple[str, ...]:
    """A lock that no longer satisfies its manifest still packs (the lock is the truth), but
    loudly: one warning per difference; none when the manifest cannot be checked (e.g. a
    pixi-build project), which planning reports itself."""
    from portenv.project.check import lock_differences  # the checker's import is heavy

    try:
        differences = lock_differences(project)
    except PortenvError:
        return ()
    return tuple(f"pixi.lock is stale: {d.strip()} (run `portenv lock`)" for d in differences)

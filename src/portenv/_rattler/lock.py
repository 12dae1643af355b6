"""pixi.lock through py-rattler: reading environments and platforms, writing a new lock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import rattler
from packaging.utils import canonicalize_name

from portenv._rattler.records import conda_package_of, hex_or_none
from portenv.errors import LockFileError
from portenv.model import CondaPackage, PypiKind, PypiPackage

T = TypeVar("T")

__all__ = [
    "LockedEnvironment",
    "LockedEnvironmentContent",
    "LockedPlatform",
    "PypiEntry",
    "environment_names",
    "environment_platforms",
    "load_lock",
    "lock_platforms",
    "locked_environment",
    "pypi_kind",
    "read_lock",
    "rewrite_lock",
    "write_lock",
]


@dataclass(frozen=True)
class LockedPlatform:
    """A platform of a lock environment: its name, conda subdir and assumed virtual packages."""

    name: str
    subdir: str
    virtual_packages: tuple[str, ...]


@dataclass(frozen=True)
class LockedEnvironment:
    """The packages one environment of a lock holds on one platform."""

    conda: tuple[CondaPackage, ...]
    pypi: tuple[PypiPackage, ...]
    source_packages: tuple[str, ...]


@dataclass(frozen=True)
class PypiEntry:
    """A PyPI package as a lock records it, including what py-rattler cannot write itself."""

    name: str
    version: str
    location: str
    sha256: str | None = None
    requires_dist: tuple[str, ...] = ()
    requires_python: str | None = None

    @property
    def key(self) -> str:
        """The normalised name (PEP 503), which is what rattler writes as ``name``."""
        return canonicalize_name(self.name)


@dataclass(frozen=True)
class LockedEnvironmentContent:
    """Everything one environment of a lock holds, per platform name."""

    channels: tuple[str, ...]
    conda: dict[str, tuple[CondaPackage, ...]]
    pypi: dict[str, tuple[PypiEntry, ...]]
    sources: dict[str, tuple[str, ...]]


def load_lock(path: Path) -> Any:
    """Read a pixi.lock with rattler, translating its parse errors."""
    try:
        return rattler.LockFile.from_path(path)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"cannot read lock file {path}: {first_line}"
        raise LockFileError(msg, hint="re-create it with `pixi lock` or `portenv lock`") from exc


def environment_names(lock: Any) -> list[str]:
    """The environment names a lock defines."""
    return [name for name, _env in lock.environments()]


def environment_platforms(lock: Any, env_name: str) -> list[LockedPlatform]:
    """The platforms one environment of the lock is solved for."""
    env = lock.environment(env_name)
    return [
        LockedPlatform(p.name, str(p.subdir), tuple(p.virtual_packages)) for p in env.platforms()
    ]


def pypi_kind(location: str) -> PypiKind:
    """Classify a PyPI lock location by what portenv must do with it."""
    lowered = location.lower().split("#", 1)[0]
    if lowered.startswith("git+") or "git+" in lowered.split("://", 1)[0]:
        return "git"
    if lowered.endswith(".whl"):
        return "wheel"
    if lowered.endswith((".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz")):
        return "sdist"
    return "path"


def _pypi_sha256(locked: Any) -> str | None:
    """The lock's sha256 for a PyPI entry (rattler raises when the entry has no hashes)."""
    try:
        return hex_or_none(locked.hashes.sha256)
    except AttributeError:
        return None


def _conda_package(locked: Any) -> CondaPackage:
    return conda_package_of(locked.repo_data_record())


def _pypi_package(locked: Any) -> PypiPackage:
    location = str(locked.location)
    return PypiPackage(
        name=str(locked.name),
        version=str(locked.version),
        url=location,
        kind=pypi_kind(location),
        sha256=_pypi_sha256(locked),
    )


def lock_platforms(lock: Any) -> list[LockedPlatform]:
    """The platforms a lock declares (v7 lists them with their virtual packages)."""
    return [
        LockedPlatform(p.name, str(p.subdir), tuple(p.virtual_packages)) for p in lock.platforms()
    ]


def _locked_conda(locked: Any, root: Path) -> CondaPackage:
    """A conda package of the lock; a relative location is resolved against `root`.

    py-rattler cannot make a RepoDataRecord of a relative path, so it is rebuilt from the
    package record with the absolute file URL.
    """
    location = str(locked.location)
    if "://" in location or location.startswith("/"):
        return _conda_package(locked)
    absolute = (root / location).resolve()
    channel = absolute.parent.parent.as_uri()  # <channel>/<subdir>/<file>, as rattler derives
    record = rattler.RepoDataRecord(
        locked.package_record, absolute.name, absolute.as_uri(), channel
    )
    return conda_package_of(record)


def _pypi_entry(locked: Any) -> PypiEntry:
    return PypiEntry(
        name=str(locked.name),
        version=str(locked.version),
        location=str(locked.location),
        sha256=_pypi_sha256(locked),
        requires_dist=tuple(str(r) for r in locked.requires_dist),
        requires_python=str(locked.requires_python) if locked.requires_python else None,
    )


def _split(
    env: Any, platform: Any, root: Path, pypi_of: Callable[[Any], T]
) -> tuple[tuple[CondaPackage, ...], tuple[T, ...], tuple[str, ...]]:
    """One environment's packages on one platform by kind, each sorted by name.

    Conda packages the lock names by a relative path resolve against `root`, the lock's folder
    (portenv writes packages of a channel inside the project as ``./`` paths, so it can move).
    """
    conda: list[CondaPackage] = []
    pypi: list[tuple[str, T]] = []
    sources: list[str] = []
    for locked in env.packages(platform) or []:
        if isinstance(locked, rattler.CondaLockedBinaryPackage):
            conda.append(_locked_conda(locked, root))
        elif isinstance(locked, rattler.PypiLockedPackage):
            pypi.append((str(locked.name), pypi_of(locked)))
        else:
            sources.append(f"{locked.name} @ {locked.location}")
    conda.sort(key=lambda p: p.name)
    pypi.sort(key=lambda named: named[0])
    return tuple(conda), tuple(entry for _, entry in pypi), tuple(sorted(sources))


def _environment_content(env: Any, root: Path) -> LockedEnvironmentContent:
    conda: dict[str, tuple[CondaPackage, ...]] = {}
    pypi: dict[str, tuple[PypiEntry, ...]] = {}
    sources: dict[str, tuple[str, ...]] = {}
    for platform in env.platforms():
        split = _split(env, platform, root, _pypi_entry)
        conda[platform.name], pypi[platform.name], sources[platform.name] = split
    channels = tuple(str(c) for c in env.channels())
    return LockedEnvironmentContent(channels, conda, pypi, sources)


def read_lock(path: Path) -> tuple[list[LockedPlatform], dict[str, LockedEnvironmentContent]]:
    """A lock's platforms and, per environment, its packages; relative paths resolved."""
    lock = load_lock(path)
    root = path.resolve().parent
    try:
        environments = {name: _environment_content(env, root) for name, env in lock.environments()}
    except Exception as exc:
        msg = f"cannot read the packages of {path}: {exc}"
        raise LockFileError(msg, hint="re-create it with `portenv lock`") from exc
    return lock_platforms(lock), environments


def locked_environment(
    lock: Any, env_name: str, platform_name: str, root: Path
) -> LockedEnvironment:
    """Split the lock's packages for one environment and platform by kind (see `_split`)."""
    env = lock.environment(env_name)
    platform = next(p for p in env.platforms() if p.name == platform_name)
    return LockedEnvironment(*_split(env, platform, root, _pypi_package))


def _lock_platform(platform: LockedPlatform) -> Any:
    return rattler.LockPlatform(
        platform.name, rattler.Subdir(platform.subdir), list(platform.virtual_packages)
    )


def write_lock(
    path: Path,
    platforms: Sequence[LockedPlatform],
    environments: dict[str, LockedEnvironmentContent],
) -> None:
    """Write a lock with py-rattler's writer; PyPI hashes and metadata are added by the caller."""
    by_name = {p.name: _lock_platform(p) for p in platforms}
    lock = rattler.LockFile(list(by_name.values()))
    for env_name, env in environments.items():
        lock.set_channels(env_name, [rattler.LockChannel(c) for c in env.channels])
        for platform_name, packages in env.conda.items():
            for package in packages:
                lock.add_conda_package(env_name, by_name[platform_name], package.record)
        for platform_name, dists in env.pypi.items():
            for dist in dists:
                lock.add_pypi_package(
                    env_name, by_name[platform_name], dist.name, dist.version, dist.location
                )
    try:
        lock.to_path(path)
    except Exception as exc:
        msg = f"cannot write {path}: {exc}"
        raise LockFileError(msg, hint="check that the folder is writable") from exc


def rewrite_lock(path: Path) -> None:
    """Read and write a lock with rattler, so fields get rattler's own order and formatting."""
    load_lock(path).to_path(path)

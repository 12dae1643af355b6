"""The only module that imports rattler: it turns rattler's objects and errors into portenv's."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rattler
from rattler.package import PathsJson

from portenv.errors import FetchError, LockFileError, StageError
from portenv.model import CondaPackage, FetchedPackage, PypiKind, PypiPackage

__all__ = [
    "LockedPlatform",
    "install",
    "load_lock",
    "locked_environment",
    "package_placeholders",
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


def _hex(value: bytes | None) -> str | None:
    return value.hex() if value else None


def _conda_package(locked: Any) -> CondaPackage:
    record = locked.repo_data_record()
    return CondaPackage(
        name=record.name.normalized,
        version=str(record.version),
        build=str(record.build),
        subdir=str(record.subdir),
        url=record.url,
        file_name=record.file_name,
        sha256=_hex(record.sha256),
        md5=_hex(record.md5),
        size=record.size,
        depends=tuple(record.depends),
        record=record,
    )


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
        return _hex(locked.hashes.sha256)
    except AttributeError:
        return None


def _pypi_package(locked: Any) -> PypiPackage:
    location = str(locked.location)
    return PypiPackage(
        name=str(locked.name),
        version=str(locked.version),
        url=location,
        kind=pypi_kind(location),
        sha256=_pypi_sha256(locked),
    )


def locked_environment(lock: Any, env_name: str, platform_name: str) -> LockedEnvironment:
    """Split the lock's packages for one environment and platform by kind."""
    env = lock.environment(env_name)
    platform = next(p for p in env.platforms() if p.name == platform_name)
    conda: list[CondaPackage] = []
    pypi: list[PypiPackage] = []
    source: list[str] = []
    for locked in env.packages(platform):
        if isinstance(locked, rattler.CondaLockedBinaryPackage):
            conda.append(_conda_package(locked))
        elif isinstance(locked, rattler.PypiLockedPackage):
            pypi.append(_pypi_package(locked))
        else:
            source.append(f"{locked.name} @ {locked.location}")
    conda.sort(key=lambda p: p.name)
    pypi.sort(key=lambda p: p.name)
    return LockedEnvironment(tuple(conda), tuple(pypi), tuple(sorted(source)))


def package_placeholders(archive: Path) -> list[tuple[str, str, str]]:
    """(path, placeholder, file mode) of every file the package marks as holding its prefix."""
    try:
        paths = PathsJson.from_package_archive(archive)
    except Exception as exc:
        msg = f"cannot read the file list of {archive.name}: {exc}"
        raise FetchError(msg, hint="delete the cached file and retry") from exc
    found: list[tuple[str, str, str]] = []
    for entry in paths.paths:
        placeholder = entry.prefix_placeholder
        if placeholder is not None:
            mode = "binary" if placeholder.file_mode.binary else "text"
            found.append((str(entry.relative_path), placeholder.placeholder, mode))
    return found


def install(
    packages: Sequence[FetchedPackage],
    prefix: Path,
    *,
    placeholder: str,
    subdir: str,
    cache_dir: Path,
) -> None:
    """Link the fetched packages into `prefix`, writing `placeholder` wherever a path goes.

    The records are re-pointed at the verified cache files, so rattler never downloads.
    """
    records = [
        rattler.RepoDataRecord(
            f.package.record, f.package.file_name, f.path.as_uri(), f.package.record.channel or ""
        )
        for f in packages
    ]
    try:
        asyncio.run(
            rattler.install(
                records,
                target_prefix=prefix,
                cache_dir=cache_dir,
                platform=rattler.Platform(subdir),
                execute_link_scripts=False,
                show_progress=False,
                alternative_target_prefix=placeholder,
            )
        )
    except Exception as exc:
        msg = f"installing the packages into the staging prefix failed: {exc}"
        raise StageError(msg, hint="run with --debug for the full cause") from exc

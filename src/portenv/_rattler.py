"""The only module that imports rattler: it turns rattler's objects and errors into portenv's."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rattler
import rattler.package_streaming
from packaging.utils import canonicalize_name
from rattler.package import PathsJson

from portenv.errors import (
    FetchError,
    InputError,
    LockFileError,
    PortenvError,
    ResolveError,
    StageError,
)
from portenv.model import CondaPackage, FetchedPackage, PypiKind, PypiPackage

__all__ = [
    "LockedEnvironmentContent",
    "LockedPlatform",
    "PypiEntry",
    "SpecParts",
    "conda_package_of",
    "install",
    "load_lock",
    "lock_platforms",
    "locked_environment",
    "package_placeholders",
    "parse_spec",
    "read_lock",
    "read_package_file",
    "repodata_packages",
    "rewrite_lock",
    "solve",
    "spec_matches",
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
    return conda_package_of(locked.repo_data_record())


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


def read_package_file(path: Path) -> CondaPackage:
    """A local .conda / .tar.bz2 file as a locked package: its index.json, size and hashes.

    Its url is the file itself, so nothing is ever downloaded for it.
    """
    data = path.read_bytes()
    try:
        with tempfile.TemporaryDirectory(prefix="portenv-inject-") as tmp:
            rattler.package_streaming.extract(path, Path(tmp))
            record = rattler.PackageRecord.from_index_json(
                Path(tmp) / "info" / "index.json",
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                md5=hashlib.md5(data).hexdigest(),
            )
    except Exception as exc:
        msg = f"not a conda package: {path} ({exc})"
        raise InputError(
            msg, hint="give a .conda or .tar.bz2 file built by conda or rattler-build"
        ) from exc
    where = path.resolve()
    return conda_package_of(
        rattler.RepoDataRecord(record, path.name, where.as_uri(), where.parent.as_uri())
    )


def _local_records(packages: Sequence[FetchedPackage]) -> list[Any]:
    """The records re-pointed at the verified cache files, so rattler never downloads."""
    return [
        rattler.RepoDataRecord(
            f.package.record, f.package.file_name, f.path.as_uri(), f.package.record.channel
        )
        for f in packages
    ]


def install(
    packages: Sequence[FetchedPackage],
    prefix: Path,
    *,
    subdir: str,
    cache_dir: Path,
    placeholder: str | None = None,
) -> None:
    """Link the fetched packages into `prefix`; with `placeholder`, write that path instead.

    A staging prefix gets the placeholder everywhere a path goes; a real prefix (a local env)
    is compared with its conda-meta, so an update only changes what differs. Link scripts
    never run: nothing of the target executes, so cross-platform packing works.
    """
    try:
        asyncio.run(
            rattler.install(
                _local_records(packages),
                target_prefix=prefix,
                cache_dir=cache_dir,
                platform=rattler.Subdir(subdir),
                execute_link_scripts=False,
                show_progress=False,
                alternative_target_prefix=placeholder,
            )
        )
    except Exception as exc:
        msg = f"installing the packages into {prefix} failed: {exc}"
        raise StageError(msg, hint="run with --debug for the full cause") from exc


# --- authoring: solving, lock writing, real prefixes (used by portenv.author) -----------


_SPEC_HINT = "write it as NAME, NAME=VERSION or 'NAME VERSION BUILD'"


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


@dataclass(frozen=True)
class SpecParts:
    """The parts of a conda MatchSpec that a manifest stores separately."""

    name: str
    version: str | None
    build: str | None
    channel: str | None


def parse_spec(spec: str) -> SpecParts:
    """Split a conda MatchSpec (``python=3.12``, ``openssl 3.3.1 *_0``) as pixi stores it."""
    try:
        match = rattler.MatchSpec(spec)
    except Exception as exc:
        msg = f"invalid conda package spec {spec!r}: {exc}"
        raise InputError(msg, hint=_SPEC_HINT) from exc
    if match.name is None:
        msg = f"conda package spec {spec!r} names no package"
        raise InputError(msg, hint=_SPEC_HINT)
    channel = match.channel.name if match.channel is not None else None
    version = str(match.version) if match.version is not None else None
    build = str(match.build) if match.build is not None else None
    return SpecParts(match.name.normalized, version, build, channel)


def spec_matches(spec: str, package: CondaPackage) -> bool:
    """Whether a locked package satisfies a conda MatchSpec (name, version, build).

    A package without its rattler record (built by hand) is matched on its own fields.
    """
    record = package.record
    if record is None:
        build = rattler.BuildString(package.build)
        record = rattler.PackageRecord(package.name, package.version, build, 0, package.subdir)
    matched: bool = rattler.MatchSpec(spec, strict=False).matches(record)
    return matched


def conda_package_of(record: Any) -> CondaPackage:
    """A portenv CondaPackage for a rattler RepoDataRecord (the record rides along)."""
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


def _virtual_package(text: str) -> Any:
    """``__glibc=2.28`` or ``__archspec=0=x86_64`` as the solver's GenericVirtualPackage."""
    name, _, rest = text.partition("=")
    version, _, build = rest.partition("=")
    return rattler.GenericVirtualPackage(
        rattler.PackageName(name),
        rattler.Version(version or "0"),
        rattler.BuildString(build or "0"),
    )


def solve(
    channels: Sequence[str],
    specs: Sequence[str],
    *,
    subdir: str,
    virtual_packages: Sequence[str],
    locked: Sequence[CondaPackage] = (),
) -> tuple[CondaPackage, ...]:
    """Solve `specs` for one platform; `locked` packages are preferred when still valid.

    A new Gateway per call: a reused one keeps stale repodata (FIELD-NOTES).
    """
    try:
        records = asyncio.run(
            rattler.solve(
                list(channels),
                list(specs),
                gateway=rattler.Gateway(),
                platforms=[rattler.Subdir(subdir), rattler.Subdir("noarch")],
                locked_packages=[p.record for p in locked if p.record is not None],
                virtual_packages=[_virtual_package(v) for v in virtual_packages],
            )
        )
    except Exception as exc:
        raise _solve_error(exc, specs, subdir) from exc
    return tuple(sorted((conda_package_of(r) for r in records), key=lambda p: p.name))


def _solve_error(exc: Exception, specs: Sequence[str], subdir: str) -> PortenvError:
    text = str(exc).strip() or type(exc).__name__
    if type(exc).__name__ == "SolverError":
        msg = f"cannot solve {', '.join(specs)} for {subdir}:\n{text}"
        return ResolveError(msg, hint="relax or remove the spec the explanation names")
    if type(exc).__name__ in ("InvalidMatchSpecError", "InvalidVersionSpecError"):
        msg = f"invalid package spec: {text}"
        return InputError(msg, hint=_SPEC_HINT)
    msg = f"cannot read the channels for {subdir}: {text.splitlines()[0]}"
    return FetchError(msg, hint="check the channel URLs in the manifest and your network")


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


def _environment_content(env: Any, root: Path) -> LockedEnvironmentContent:
    conda: dict[str, tuple[CondaPackage, ...]] = {}
    pypi: dict[str, tuple[PypiEntry, ...]] = {}
    sources: dict[str, tuple[str, ...]] = {}
    for platform in env.platforms():
        found_conda, found_pypi, found_sources = [], [], []
        for locked in env.packages(platform) or []:
            if isinstance(locked, rattler.CondaLockedBinaryPackage):
                found_conda.append(_locked_conda(locked, root))
            elif isinstance(locked, rattler.PypiLockedPackage):
                found_pypi.append(_pypi_entry(locked))
            else:
                found_sources.append(f"{locked.name} @ {locked.location}")
        conda[platform.name] = tuple(sorted(found_conda, key=lambda p: p.name))
        pypi[platform.name] = tuple(sorted(found_pypi, key=lambda p: p.name))
        sources[platform.name] = tuple(sorted(found_sources))
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


# --- pixi-pack archives: records of a local channel (used by portenv.source.pixipack) ---


def repodata_packages(repodata: Path, channel_dir: Path) -> list[CondaPackage]:
    """The packages one ``repodata.json`` of the local channel `channel_dir` lists.

    Each record's URL names the file beside that repodata.json and its channel is
    `channel_dir`: the packages are installed from there, never downloaded.
    """
    try:
        channel = rattler.Channel(channel_dir.resolve().as_uri())
        records = rattler.RepoData.from_path(repodata).into_repo_data(channel)
    except Exception as exc:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        msg = f"cannot read the package list {repodata.name} of {repodata.parent.name}: {first}"
        raise InputError(msg, hint="the archive is damaged: get it again from its source") from exc
    return [conda_package_of(record) for record in records]


def locked_environment(
    lock: Any, env_name: str, platform_name: str, root: Path
) -> LockedEnvironment:
    """Split the lock's packages for one environment and platform by kind.

    Conda packages the lock names by a relative path resolve against `root`, the lock's
    folder: portenv writes packages of a channel inside the project as ``./`` paths (so the folder
    can move); those resolve against `root`, the lock's folder.
    """
    env = lock.environment(env_name)
    platform = next(p for p in env.platforms() if p.name == platform_name)
    conda: list[CondaPackage] = []
    pypi: list[PypiPackage] = []
    source: list[str] = []
    for locked in env.packages(platform):
        if isinstance(locked, rattler.CondaLockedBinaryPackage):
            conda.append(_locked_conda(locked, root))
        elif isinstance(locked, rattler.PypiLockedPackage):
            pypi.append(_pypi_package(locked))
        else:
            source.append(f"{locked.name} @ {locked.location}")
    conda.sort(key=lambda p: p.name)
    pypi.sort(key=lambda p: p.name)
    return LockedEnvironment(tuple(conda), tuple(pypi), tuple(sorted(source)))

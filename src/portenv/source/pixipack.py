"""Read a pixi-pack archive (the tar, or a folder it was extracted to) into verified packages.

The layout is the one ``portenv pack --format pixi-pack`` writes and ``pixi-unpack`` reads
(Quantco/pixi-pack ``src/unpack.rs``): ``pixi-pack.json`` (format ``"1"`` and the platform),
``channel/<subdir>/<package file>`` with one ``repodata.json`` per subdir, and ``pypi/*.whl``.
Nothing is trusted: the tar is extracted with portenv's checks, every conda package must have
a record in its subdir's repodata.json and match that record's sha256 (else md5), and every
wheel must be a wheel for the environment's python and platform. The result is what the
stages after a source take: FetchedPackages (their records pointing at the verified files)
and wheels with the sha256 they were read with. A pixi-pack keeps no download URLs, so each
CondaPackage's ``url`` is its place in the pack (``channel/linux-64/x.conda``).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename

from portenv import _rattler
from portenv.errors import HashMismatchError, InputError
from portenv.model import FetchedPackage, PypiPackage, PypiSource, Subdir
from portenv.source.pypi import wheel_misfit
from portenv.source.safetar import extract_safely

__all__ = [
    "CHANNEL_DIR",
    "METADATA_FILE",
    "PIXI_PACK_FORMAT",
    "PYPI_DIR",
    "PixiPack",
    "PixiPackMetadata",
    "is_pixi_pack",
    "open_pixi_pack",
    "read_metadata",
]

PIXI_PACK_FORMAT = "1"
METADATA_FILE = "pixi-pack.json"
CHANNEL_DIR = "channel"
PYPI_DIR = "pypi"
REPODATA_FILE = "repodata.json"
_CHUNK = 1 << 20
_DAMAGED = "the archive is damaged: get it again from its source"


@dataclass(frozen=True)
class PixiPackMetadata:
    """``pixi-pack.json``: the format version and the conda subdir the pack is for."""

    version: str
    platform: Subdir
    pixi_pack_version: str | None


@dataclass(frozen=True)
class PixiPack:
    """A verified pixi-pack: the folder its files are in, and what it installs."""

    root: Path
    metadata: PixiPackMetadata
    conda: tuple[FetchedPackage, ...]
    wheels: tuple[PypiSource, ...]

    def location(self, path: Path) -> str:
        """Where a file of the pack sits inside it (``channel/linux-64/x.conda``)."""
        return path.relative_to(self.root).as_posix()


def _member_name(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def is_pixi_pack(path: Path) -> bool:
    """Whether `path` is a pixi-pack folder or a tar holding ``pixi-pack.json``."""
    if path.is_dir():
        return (path / METADATA_FILE).is_file()
    try:
        with tarfile.open(path, "r:*") as archive:
            return any(_member_name(m.name) == METADATA_FILE for m in archive)
    except (OSError, tarfile.TarError, EOFError):
        return False


def _metadata_bytes(path: Path) -> bytes:
    if path.is_dir():
        try:
            return (path / METADATA_FILE).read_bytes()
        except OSError as exc:
            msg = f"{path} is not a pixi-pack folder: no readable {METADATA_FILE}"
            raise InputError(msg, hint="give the folder pixi-pack's tar was extracted to") from exc
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if _member_name(member.name) == METADATA_FILE and member.isreg():
                    stream = archive.extractfile(member)
                    if stream is not None:
                        return stream.read(1 << 16)
    except (OSError, tarfile.TarError, EOFError) as exc:
        msg = f"cannot read {path} as a tar: {exc}"
        raise InputError(msg, hint=_DAMAGED) from exc
    msg = f"{path} is not a pixi-pack archive: it has no {METADATA_FILE}"
    raise InputError(msg, hint="give an environment.tar written by pixi-pack or portenv pack")


def _parse_metadata(data: bytes, where: Path) -> PixiPackMetadata:
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        msg = f"{METADATA_FILE} of {where} is not JSON: {exc}"
        raise InputError(msg, hint=_DAMAGED) from exc
    if not isinstance(raw, dict):
        msg = f"{METADATA_FILE} of {where} is not a JSON object"
        raise InputError(msg, hint=_DAMAGED)
    version, platform = raw.get("version"), raw.get("platform")
    if version != PIXI_PACK_FORMAT:
        msg = f"{where} is pixi-pack format {version!r}; portenv reads format {PIXI_PACK_FORMAT!r}"
        raise InputError(msg, hint="unpack it with the pixi-unpack of the pixi-pack that made it")
    if not isinstance(platform, str) or not platform:
        msg = f"{METADATA_FILE} of {where} names no platform"
        raise InputError(msg, hint=_DAMAGED)
    tool = raw.get("pixi-pack-version")
    return PixiPackMetadata(version, Subdir(platform), tool if isinstance(tool, str) else None)


def read_metadata(path: Path) -> PixiPackMetadata:
    """``pixi-pack.json`` of a pixi-pack tar or folder, validated, without extracting anything."""
    return _parse_metadata(_metadata_bytes(path), path)


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _plain(name: str) -> bool:
    return bool(name) and name not in {".", ".."} and "/" not in name and "\0" not in name


def _subdir_packages(
    sub: Path, channel: Path, platform: str, problems: list[str]
) -> list[FetchedPackage]:
    """The packages one ``channel/<subdir>/repodata.json`` lists, each file present."""
    where = f"{CHANNEL_DIR}/{sub.name}"
    if sub.name not in (platform, "noarch"):
        problems.append(f"{where} is for another platform than the pack's {platform}")
        return []
    found = []
    for package in _rattler.repodata_packages(sub / REPODATA_FILE, channel):
        name = package.file_name
        path = sub / name
        if not _plain(name):
            problems.append(f"{where}/{REPODATA_FILE} names an unusable file {name!r}")
        elif package.subdir != sub.name:
            problems.append(f"{where}/{name} is recorded for subdir {package.subdir!r}")
        elif not path.is_file() or path.is_symlink():
            problems.append(f"{where}/{name} is listed in {REPODATA_FILE} but missing")
        elif not (package.sha256 or package.md5):
            problems.append(f"{where}/{name} has no sha256 or md5 to verify it with")
        else:
            found.append(FetchedPackage(replace(package, url=f"{where}/{name}"), path))
    return found


def _refuse(problems: Sequence[str], where: Path) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        msg = f"{where} is not a usable pixi-pack: {problems[0]}{more}"
        raise InputError(msg, hint=_DAMAGED)


def _verify(fetched: FetchedPackage, root: Path) -> None:
    """The package file has the hash its repodata record gives (sha256, else md5)."""
    package = fetched.package
    algorithm, expected = ("sha256", package.sha256) if package.sha256 else ("md5", package.md5)
    actual = _digest(fetched.path, algorithm)
    if actual != expected:
        where = fetched.path.relative_to(root).as_posix()
        raise HashMismatchError(
            package.name, where, f"{algorithm}:{expected}", f"{algorithm}:{actual}"
        )


def _conda(root: Path, platform: str, where: Path) -> tuple[FetchedPackage, ...]:
    channel = root / CHANNEL_DIR
    if not channel.is_dir():
        _refuse([f"it has no {CHANNEL_DIR}/ folder"], where)
    problems: list[str] = []
    packages: list[FetchedPackage] = []
    for sub in sorted(channel.iterdir()):
        if sub.is_dir() and (sub / REPODATA_FILE).is_file():
            packages += _subdir_packages(sub, channel, platform, problems)
    names = [f.package.name for f in packages]
    problems += [
        f"package {n} is listed twice" for n in sorted({n for n in names if names.count(n) > 1})
    ]
    _refuse(problems, where)
    for fetched in packages:
        _verify(fetched, root)
    return tuple(sorted(packages, key=lambda f: f.package.name))


def _python_version(conda: Sequence[FetchedPackage]) -> tuple[int, int] | None:
    python = next((f.package for f in conda if f.package.name == "python"), None)
    if python is None:
        return None
    major, minor = [*python.version.split("."), "0"][:2]
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None


def _wheel(path: Path, python: tuple[int, int], platform: str) -> PypiSource | str:
    if not path.is_file() or path.is_symlink():
        return f"{PYPI_DIR}/{path.name} is not a plain file"
    misfit = wheel_misfit(path.name, python, platform)
    if misfit:
        return f"{PYPI_DIR}/{path.name}: {misfit}"
    name, version, _build, _tags = parse_wheel_filename(path.name)
    sha256 = _digest(path, "sha256")
    package = PypiPackage(
        name=str(canonicalize_name(name)),
        version=str(version),
        url=path.as_uri(),
        kind="wheel",
        sha256=sha256,
    )
    return PypiSource(package, path, "file", sha256)


def _wheels(
    root: Path, conda: Sequence[FetchedPackage], platform: str, where: Path
) -> tuple[PypiSource, ...]:
    folder = root / PYPI_DIR
    if not folder.exists():
        return ()
    if not folder.is_dir():
        _refuse([f"{PYPI_DIR} is not a folder"], where)
    python = _python_version(conda)
    if python is None:
        _refuse([f"it has {PYPI_DIR}/ wheels but no conda python package"], where)
        return ()
    found: list[Any] = [_wheel(p, python, platform) for p in sorted(folder.iterdir())]
    _refuse([f for f in found if isinstance(f, str)], where)
    wheels = [w for w in found if isinstance(w, PypiSource)]
    names = [w.package.name for w in wheels]
    _refuse(
        [f"wheel {n} is there twice" for n in sorted({n for n in names if names.count(n) > 1})],
        where,
    )
    return tuple(wheels)


def _extract(path: Path, scratch: Path) -> None:
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(path, "r:*") as archive:
            extract_safely(archive, scratch, what=f"pixi-pack archive {path.name}", symlinks=False)
    except (tarfile.ReadError, tarfile.CompressionError) as exc:
        msg = f"cannot read {path} as a tar: {exc}"
        raise InputError(msg, hint=_DAMAGED) from exc


def open_pixi_pack(path: Path, scratch: Path) -> PixiPack:
    """Verify a pixi-pack tar (extracted into `scratch`) or folder (read in place).

    `scratch` must not exist yet or be empty; the caller removes it. Raises InputError for a
    layout problem (all of them listed in one message) and HashMismatchError for a package
    whose bytes are not the ones its repodata record names.
    """
    if path.is_dir():
        root = path.resolve()
    else:
        _extract(path, scratch)
        root = scratch.resolve()
    metadata = _parse_metadata(_metadata_bytes(root), path)
    conda = _conda(root, metadata.platform, path)
    wheels = _wheels(root, conda, metadata.platform, path)
    return PixiPack(root, metadata, conda, wheels)

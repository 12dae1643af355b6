"""Conda package records: rattler's RepoDataRecord and package files as portenv's CondaPackage."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import rattler
import rattler.package_streaming
from rattler.package import PathsJson

from portenv.errors import FetchError, InputError
from portenv.model import CondaPackage

__all__ = [
    "conda_package_of",
    "extract_package",
    "hex_or_none",
    "package_placeholders",
    "read_package_file",
    "record_channel",
    "record_license",
    "repodata_packages",
]


def hex_or_none(value: bytes | None) -> str | None:
    """A digest as rattler holds it (bytes, or None) as lowercase hex."""
    return value.hex() if value else None


def conda_package_of(record: Any) -> CondaPackage:
    """A portenv CondaPackage for a rattler RepoDataRecord (the record rides along)."""
    return CondaPackage(
        name=record.name.normalized,
        version=str(record.version),
        build=str(record.build),
        subdir=str(record.subdir),
        url=record.url,
        file_name=record.file_name,
        sha256=hex_or_none(record.sha256),
        md5=hex_or_none(record.md5),
        size=record.size,
        depends=tuple(record.depends),
        record=record,
    )


def record_license(package: CondaPackage) -> str | None:
    """The licence the package's record declares (its index.json's, as repodata and the lock
    carry it), or None."""
    license_text = getattr(package.record, "license", None)
    return str(license_text) if license_text else None


def record_channel(package: CondaPackage) -> str | None:
    """The channel URL the package's record names, without a trailing slash, or None."""
    channel = getattr(package.record, "channel", None)
    return str(channel).rstrip("/") if channel else None


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


def extract_package(archive: Path, dest: Path) -> None:
    """Lay out a .conda / .tar.bz2 file's content (``info/`` included) in the folder `dest`."""
    try:
        rattler.package_streaming.extract(archive, dest)
    except Exception as exc:
        msg = f"cannot read the conda package {archive.name}: {exc}"
        raise InputError(msg, hint="the archive is damaged: get it again from its source") from exc


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

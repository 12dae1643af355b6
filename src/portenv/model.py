"""Frozen values passed from one pipeline stage to the next."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NewType

from portenv.format import FORMAT_VERSION, UPDATE_FORMAT

__all__ = [
    "CondaPackage",
    "FetchedPackage",
    "HostLibrary",
    "PackMeta",
    "Plan",
    "PypiAction",
    "PypiKind",
    "PypiOrigin",
    "PypiPackage",
    "PypiSource",
    "RelocFile",
    "RelocationManifest",
    "Sha256Hex",
    "StagedPrefix",
    "Subdir",
]

Subdir = NewType("Subdir", str)
Sha256Hex = NewType("Sha256Hex", str)
PypiKind = Literal["wheel", "sdist", "git", "path", "editable"]
PypiAction = Literal["install", "build", "skip", "refuse"]


@dataclass(frozen=True)
class CondaPackage:
    """One conda package of the locked environment, as the lock records it."""

    name: str
    version: str
    build: str
    subdir: str
    url: str
    file_name: str
    sha256: str | None
    md5: str | None
    size: int | None
    depends: tuple[str, ...] = ()
    record: Any = field(default=None, compare=False, repr=False)
    """The rattler RepoDataRecord, opaque outside the rattler adapter."""

    def to_json(self) -> dict[str, Any]:
        """The fields `portenv plan --json` reports."""
        return {
            "name": self.name,
            "version": self.version,
            "build": self.build,
            "subdir": self.subdir,
            "url": self.url,
            "sha256": self.sha256,
            "size": self.size,
        }


@dataclass(frozen=True)
class PypiPackage:
    """One PyPI distribution of the locked environment."""

    name: str
    version: str
    url: str
    kind: PypiKind
    sha256: str | None
    action: PypiAction = "install"
    reason: str = ""
    """Why the package is skipped or refused, or how an editable one is installed instead."""
    size: int | None = None
    """The file's size in bytes, when the lock records it."""

    @property
    def file_name(self) -> str:
        """The file's name, from the last part of its location."""
        return self.url.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]

    @property
    def is_direct(self) -> bool:
        """A direct reference (URL or path) rather than an index download (PEP 610)."""
        return self.url.startswith("direct+") or "://" not in self.url

    @property
    def is_download(self) -> bool:
        """Fetched over the network (an index file, a URL, a git clone), not read from disk."""
        location = self.url.removeprefix("direct+").removeprefix("git+")
        return "://" in location and not location.startswith("file:")

    def to_json(self) -> dict[str, Any]:
        """The fields `portenv plan --json` reports."""
        return {
            "name": self.name,
            "version": self.version,
            "url": self.url,
            "kind": self.kind,
            "sha256": self.sha256,
            "action": self.action,
            "reason": self.reason,
            "size": self.size,
        }


PypiOrigin = Literal["file", "folder", "git"]
"""A downloaded or local file (a wheel or sdist), a local source folder, a git checkout."""


@dataclass(frozen=True)
class PypiSource:
    """Where one PyPI distribution's bytes are on this machine, and what identifies them."""

    package: PypiPackage
    path: Path
    origin: PypiOrigin
    digest: str
    """For a file, its verified sha256; for a folder, the sha256 of its URL (its content may
    change under the same lock); for git, the commit."""

    @property
    def key(self) -> str:
        """Its name in caches (built wheels, sealed prefixes): one namespace for the origins."""
        prefix = {"file": "", "folder": "dir-", "git": "git-"}[self.origin]
        return prefix + self.digest

    @property
    def sha256(self) -> str | None:
        """The file's sha256 (None for a folder or a checkout, which have no one file)."""
        return self.digest if self.origin == "file" else None


@dataclass(frozen=True)
class Plan:
    """What would be packed: the locked packages of one environment on one platform."""

    project_dir: Path
    environment: str
    platform: str
    subdir: Subdir
    conda: tuple[CondaPackage, ...]
    pypi: tuple[PypiPackage, ...]
    problems: tuple[str, ...]
    lock_glibc: str | None = None
    """The `__glibc` version the lock was solved for, if it records one."""
    notes: tuple[str, ...] = ()
    """One-line notes on how the inputs are packed (e.g. an editable folder installed as a copy)."""
    glibc_sources: tuple[tuple[str, str], ...] = ()
    """(version, what) known to set the glibc floor before staging, highest first."""

    def _downloads(self) -> list[int | None]:
        pypi = [p for p in self.pypi if p.action in ("install", "build") and p.is_download]
        return [p.size for p in self.conda] + [p.size for p in pypi]

    @property
    def download_size(self) -> int:
        """Bytes to download, as far as the lock records sizes (see `unknown_sizes`)."""
        return sum(size or 0 for size in self._downloads())

    @property
    def unknown_sizes(self) -> int:
        """How many downloads the lock records no size for (git clones among them)."""
        return sum(size is None for size in self._downloads())

    def to_json(self) -> dict[str, Any]:
        """The object `portenv plan --json` prints."""
        return {
            "environment": self.environment,
            "platform": self.platform,
            "subdir": self.subdir,
            "conda": [p.to_json() for p in self.conda],
            "pypi": [p.to_json() for p in self.pypi],
            "download_size": self.download_size,
            "download_size_unknown": self.unknown_sizes,
            "problems": list(self.problems),
            "notes": list(self.notes),
            "glibc_floor_sources": [{"version": v, "source": w} for v, w in self.glibc_sources],
        }


@dataclass(frozen=True)
class FetchedPackage:
    """A conda package whose archive is in the verified cache."""

    package: CondaPackage
    path: Path


@dataclass(frozen=True)
class HostLibrary:
    """A shared library copied into the environment from the build machine."""

    name: str
    """Its soname, which is also its file name in the environment."""
    path: str
    """Where it is in the environment (relative)."""
    source: str
    """Where it was found on the build machine."""
    needed_by: tuple[str, ...]
    """The files (relative) or libraries that need it."""
    size: int

    def to_json(self) -> dict[str, Any]:
        """The entry of `.portenv/bundled.json`."""
        return {
            "name": self.name,
            "path": self.path,
            "source": self.source,
            "needed_by": list(self.needed_by),
            "size": self.size,
        }


@dataclass(frozen=True)
class StagedPrefix:
    """The environment installed on the build machine, every self-reference a placeholder."""

    path: Path
    placeholder: str
    subdir: Subdir
    python: str
    """The interpreter, relative to the prefix (e.g. ``bin/python3.12``)."""
    site_packages: str = ""
    """Where packages go, relative; empty means ``lib/pythonX.Y/site-packages``."""
    bundled: tuple[HostLibrary, ...] = ()
    """Libraries staging already copied from the build machine (the portable CPython's)."""
    sources: tuple[str, ...] = ()
    """Files of the build machine the prefix was copied from (a --python base's): a cached
    sealed prefix is reused only while they are unchanged."""


@dataclass(frozen=True)
class RelocFile:
    """A file that holds the prefix: text is rewritten, binary regions are NUL-padded."""

    path: str
    mode: Literal["text", "binary"]
    regions: tuple[tuple[int, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The manifest entry (see docs/format.md)."""
        entry: dict[str, Any] = {"path": self.path, "mode": self.mode}
        if self.mode == "binary":
            entry["regions"] = [list(r) for r in self.regions]
        return entry

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RelocFile:
        """Read back a manifest entry."""
        regions = tuple((int(o), int(n)) for o, n in data.get("regions", ()))
        return cls(str(data["path"]), data["mode"], regions)


@dataclass(frozen=True)
class RelocationManifest:
    """Which files hold the prefix, so the env can be relocated again and again."""

    prefix: str
    prefix_max: int
    python: str
    files: tuple[RelocFile, ...]

    def to_json(self) -> dict[str, Any]:
        """The `.portenv/manifest.json` object."""
        return {
            "format": 1,
            "prefix": self.prefix,
            "prefix_max": self.prefix_max,
            "python": self.python,
            "files": [f.to_json() for f in self.files],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RelocationManifest:
        """Read back `.portenv/manifest.json`."""
        files = tuple(RelocFile.from_json(f) for f in data["files"])
        return cls(str(data["prefix"]), int(data["prefix_max"]), str(data["python"]), files)


@dataclass(frozen=True)
class PackMeta:
    """The meta block of an archive: what the target checks before writing anything."""

    platform: str
    arch: str
    glibc_floor: str
    unpacked_kib: int
    files: int
    prefix_max: int
    python: str
    env_name: str = "env"
    payload_size: int = 0
    payload_sha256: str = ""
    compression: str = "gzip"
    portenv_version: str = ""
    payload_cuts: tuple[tuple[int, int], ...] = ()
    """Places where the payload may be cut for parallel decompression, as (offset in the
    payload, offset in its tar stream), the last one being (payload_size, tar size)."""
    glibc_floor_files: tuple[tuple[str, str], ...] = ()
    """The ELF files that need the highest GLIBC_ versions, as (version, relative path)."""
    unzstd_size: int = 0
    """Bytes of the gzipped decompressor a zstd archive carries after its payload (0: none)."""
    unzstd_sha256: str = ""
    update: tuple[tuple[str, str], ...] = ()
    """An update's own keys (docs/format.md, "Updates"): it makes the format `update1`."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PackMeta:
        """Read back `dataclasses.asdict` of a PackMeta (JSON turns its tuples into lists)."""
        cuts = tuple((int(packed), int(tar)) for packed, tar in data.get("payload_cuts", ()))
        floor = tuple((str(v), str(f)) for v, f in data.get("glibc_floor_files", ()))
        update = tuple((str(k), str(v)) for k, v in data.get("update", ()))
        return cls(**{**data, "payload_cuts": cuts, "glibc_floor_files": floor, "update": update})

    def lines(self) -> list[str]:
        """The ``key=value`` lines, in a fixed order."""
        cuts = " ".join(f"{packed}:{tar}" for packed, tar in self.payload_cuts)
        floor = " ".join(f"{v}:{_meta_path(f)}" for v, f in self.glibc_floor_files)
        return [
            f"format={UPDATE_FORMAT if self.update else FORMAT_VERSION}",
            f"portenv_version={self.portenv_version}",
            f"platform={self.platform}",
            f"arch={self.arch}",
            "libc=glibc",
            f"glibc_floor={self.glibc_floor}",
            *([f"glibc_floor_files={floor}"] if floor else []),
            f"unpacked_kib={self.unpacked_kib}",
            f"files={self.files}",
            f"compression={self.compression}",
            f"payload_size={self.payload_size}",
            f"payload_sha256={self.payload_sha256}",
            *([f"unzstd_size={self.unzstd_size}"] if self.unzstd_sha256 else []),
            *([f"unzstd_sha256={self.unzstd_sha256}"] if self.unzstd_sha256 else []),
            f"prefix_max={self.prefix_max}",
            f"python={self.python}",
            f"env_name={self.env_name}",
            *([f"payload_cuts={cuts}"] if cuts else []),
            *(f"{key}={value}" for key, value in self.update),
        ]


def _meta_path(path: str) -> str:
    """A path as one meta word: ``%``, whitespace and non-ASCII bytes as ``%XX``.

    >>> _meta_path("lib/a b.so")
    'lib/a%20b.so'
    """
    return "".join(
        f"%{byte:02X}" if byte <= 0x20 or byte >= 0x7F or byte == 0x25 else chr(byte)
        for byte in path.encode("utf-8", "surrogateescape")
    )

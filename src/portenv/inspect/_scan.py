"""Read an environment's files once, from a folder, a tar stream or a wheel, in bounded memory.

Each regular file is seen once: its path and size are kept; the few small records inspect
needs (`.portenv/*.json`, conda-meta, dist-info RECORD and METADATA) are read whole; an ELF
file's needed glibc version is read by portenv.elf, and its sha256 kept, from the file itself
or, inside an archive, from a copy in a scratch file that the next ELF member overwrites.
Nothing else of a member is read, and no member name ever becomes a path on disk.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from portenv.elf import ELF_MAGIC, scan_elf
from portenv.fetch import file_digest

__all__ = ["Scan", "Scanner", "is_record"]

_RECORDS = re.compile(
    r"\.portenv/[^/]+\.json|conda-meta/[^/]+\.json|"
    r"(.+/)?site-packages/[^/]+\.dist-info/(RECORD|METADATA|direct_url\.json)"
)
"""The files whose text inspect reads: portenv's records, conda's, and the installed dists'."""
_RECORD_MAX = 64 << 20
"""A record larger than this is not read (no real one comes near)."""
_SPOOL = "elf"
_CHUNK = 1 << 20


def is_record(path: str) -> bool:
    """Whether inspect reads the text of the file at `path` (relative to the env root)."""
    return _RECORDS.fullmatch(path) is not None


@dataclass
class Scan:
    """What the files of an environment said."""

    sizes: dict[str, int] = field(default_factory=dict)
    """Regular files (relative path) and their bytes."""
    owners: dict[str, str] = field(default_factory=dict)
    """Files whose package was known when they were read (a pixi-pack's package files)."""
    links: int = 0
    records: dict[str, bytes] = field(default_factory=dict)
    glibc: dict[str, str] = field(default_factory=dict)
    """ELF files and the highest GLIBC_ version each needs."""
    digests: dict[str, str] = field(default_factory=dict)
    """ELF files and their sha256 (a bundled library's is in the SBOM)."""


def _normalized(name: str) -> str | None:
    """A member name as a relative path; None for the root, absolute names and ``..``."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or name.startswith("/") or ".." in parts:
        return None
    return "/".join(parts)


class Scanner:
    """Fills one Scan; `scratch` is an empty folder for the one ELF copy at a time."""

    def __init__(self, scratch: Path) -> None:
        self.scan = Scan()
        self._scratch = scratch

    def _file(self, path: str, size: int, owner: str | None) -> None:
        self.scan.sizes[path] = self.scan.sizes.get(path, 0) + size
        if owner is not None:
            self.scan.owners[path] = owner

    def _elf(self, path: str, root: Path, relative: str) -> None:
        floor = scan_elf(root, [relative]).glibc_floor
        if floor is not None:
            self.scan.glibc[path] = floor

    def stream(self, path: str, size: int, data: IO[bytes], owner: str | None = None) -> None:
        """A file read from an archive: `data` is at its first byte and may be left unread."""
        self._file(path, size, owner)
        if is_record(path) and size <= _RECORD_MAX:
            self.scan.records[path] = data.read()
            return
        head = data.read(len(ELF_MAGIC))
        if head != ELF_MAGIC:
            return
        digest = hashlib.sha256(head)
        with (self._scratch / _SPOOL).open("wb") as out:
            out.write(head)
            while chunk := data.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        self.scan.digests[path] = digest.hexdigest()
        self._elf(path, self._scratch, _SPOOL)

    def local(self, path: str, file: Path, owner: str | None = None) -> None:
        """A regular file on disk, at `path` in the environment."""
        size = file.stat().st_size
        self._file(path, size, owner)
        if is_record(path) and size <= _RECORD_MAX:
            self.scan.records[path] = file.read_bytes()
            return
        with file.open("rb") as data:
            if data.read(len(ELF_MAGIC)) != ELF_MAGIC:
                return
        self.scan.digests[path] = file_digest(file)
        self._elf(path, file.parent, file.name)

    def folder(
        self, root: Path, rename: Callable[[str], str | None] = str, owner: str | None = None
    ) -> None:
        """Every file and link under `root`, at ``rename(relative path)`` (None: left out)."""
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            base = os.path.relpath(dirpath, root)
            for name in [*sorted(filenames), *(d for d in dirnames if _islink(dirpath, d))]:
                relative = name if base == "." else f"{base}/{name}"
                path = rename(relative)
                full = Path(dirpath, name)
                if path is None:
                    continue
                mode = os.lstat(full).st_mode
                if stat.S_ISLNK(mode):
                    self.scan.links += 1
                elif stat.S_ISREG(mode):
                    self.local(path, full, owner)

    def tar(self, archive: tarfile.TarFile) -> None:
        """Every member of a tar read as a stream (``r|``), in its order."""
        for member in archive:
            path = _normalized(member.name)
            if path is None:
                continue
            if member.issym():
                self.scan.links += 1
            elif member.isreg():
                data = archive.extractfile(member)
                if data is not None:
                    self.stream(path, member.size, data)

    def wheel(self, archive: zipfile.ZipFile, rename: Callable[[str], str], owner: str) -> None:
        """The files a wheel installs, at ``rename(member name)``."""
        for info in archive.infolist():
            name = _normalized(info.filename)
            if name is None or info.is_dir():
                continue
            with archive.open(info) as data:
                self.stream(posixpath.normpath(rename(name)), info.file_size, data, owner)


def _islink(dirpath: str, name: str) -> bool:
    """os.walk lists a symlink to a folder among the folders (and does not follow it)."""
    return os.path.islink(os.path.join(dirpath, name))

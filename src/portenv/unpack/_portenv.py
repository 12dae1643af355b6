"""Unpack a portenv archive (``env.tar``, ``env.sh``) on this machine, without its sh unpacker.

The checks are portenv-unpack.sh's, in its order and with its messages (docs/format.md): the
archive's headers and meta block, then this machine (C library, architecture, glibc floor),
then the destination (name, path, existing folder, free space), then the payload's sha256,
all before anything is written. The payload is extracted with portenv's member checks and
tarfile's ``data`` filter into a work folder beside the destination, relocated there to the
final path by the relocation engine run in this process, and renamed into place.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import zstandard
from isal import igzip, isal_zlib

from portenv.errors import CompatibilityError, HashMismatchError, InputError, RelocationError
from portenv.format import (
    FORMAT_VERSION,
    META_NAME,
    META_SIZE,
    PAYLOAD_OFFSET,
    UPDATE_FORMAT,
    meta_problem,
)
from portenv.reporting import Reporter
from portenv.source.safetar import extract_safely
from portenv.target import relocate as engine
from portenv.unpack._host import HostFacts, version_at_least
from portenv.unpack._model import UnpackRequest, UnpackResult
from portenv.unpack._place import (
    Destination,
    Placement,
    check_existing,
    check_free_space,
    check_path,
    resolve_destination,
    write_failed,
)
from portenv.write.codecs import CODECS, ZSTD_WINDOW_LOG_MAX
from portenv.write.container import payload_name, unzstd_offset

__all__ = [
    "PortenvArchive",
    "check_payload",
    "compile_bytecode",
    "embedded_offset",
    "packages_text",
    "payload_tar",
    "read_archive",
    "unpack_portenv",
]

_HEAD = 1 << 16
_OFFSET_LINE = re.compile(rb"^PORTENV_EMBEDDED_OFFSET=([0-9]{10})$", re.M)
_CHUNK = 1 << 20
_AGAIN = "copy it again, or pack it again"
_DAMAGED: tuple[type[Exception], ...] = (
    gzip.BadGzipFile,
    cast("type[Exception]", isal_zlib.error),  # an exception class its stubs call an instance
    zlib.error,
    EOFError,
    zstandard.ZstdError,
    tarfile.ReadError,
)
"""What a damaged payload raises (a bad header, bad compressed data, a cut stream, no tar)."""


@dataclass(frozen=True)
class PortenvArchive:
    """An archive whose headers and meta block passed the archive checks."""

    path: Path
    offset: int
    meta: Mapping[str, str]

    def number(self, key: str) -> int:
        """A numeric meta value (checked when the archive was read)."""
        return int(self.meta[key])


def embedded_offset(head: bytes) -> int | None:
    """The offset an ``env.sh`` header gives its archive, or None when `head` is no such header."""
    if not head.startswith(b"#!"):
        return None
    found = _OFFSET_LINE.search(head)
    return int(found.group(1)) if found else None


def _header_ok(header: bytes, name: str, size: int) -> bool:
    """A ustar header for member `name` of `size` bytes."""
    if len(header) < 512 or header[257:262] != b"ustar":
        return False
    if header[:100].split(b"\0", 1)[0] != name.encode():
        return False
    digits = header[124:136].replace(b"\0", b" ").strip()
    return bool(digits) and re.fullmatch(rb"[0-7]+", digits) is not None and int(digits, 8) == size


def _parse_meta(block: bytes) -> dict[str, str]:
    meta: dict[str, str] = {}
    for line in block.decode("ascii", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[a-z0-9_]+", key) and key not in meta:
            meta[key] = value
    return meta


def _read_at(stream: BinaryIO, offset: int, size: int) -> bytes:
    stream.seek(offset)
    return stream.read(size)


def _check_meta(path: Path, meta: Mapping[str, str]) -> None:
    if meta.get("format") not in (FORMAT_VERSION, UPDATE_FORMAT):
        msg = (
            f"{path} is of archive format '{meta.get('format', '')}', "
            f"this unpacker knows format {FORMAT_VERSION}"
        )
        raise InputError(msg, hint="unpack it with the portenv version that made it")
    if meta.get("compression") not in CODECS:
        msg = f"{path} uses compression '{meta.get('compression', '')}'"
        known = " and ".join(CODECS)
        raise InputError(msg, hint=f"this unpacker knows {known}: unpack it with a newer portenv")
    if meta_problem(meta) is not None:
        msg = f"{path} has a damaged meta block"
        raise InputError(msg, hint=_AGAIN)


def read_archive(path: Path) -> PortenvArchive:
    """The archive checks: headers at the fixed offsets, a meta block portenv knows."""
    try:
        with path.open("rb") as stream:
            offset = embedded_offset(stream.read(_HEAD)) or 0
            size = os.fstat(stream.fileno()).st_size
            header = _read_at(stream, offset, 512)
            block = _read_at(stream, offset + 512, META_SIZE)
            if not _header_ok(header, META_NAME, META_SIZE) or len(block) < META_SIZE:
                msg = f"{path} is not a portenv archive (no meta block where format 1 puts it)"
                raise InputError(msg, hint=_AGAIN)
            meta = _parse_meta(block)
            _check_meta(path, meta)
            payload_size = int(meta["payload_size"])
            payload_header = _read_at(stream, offset + PAYLOAD_OFFSET - 512, 512)
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror or exc}"
        raise InputError(msg, hint="check the path and its permissions") from exc
    compression = meta["compression"]
    if not _header_ok(payload_header, payload_name(compression), payload_size):
        msg = f"{path} has no {compression} payload where format 1 puts it"
        raise InputError(msg, hint=_AGAIN)
    needed = offset + PAYLOAD_OFFSET + payload_size
    if "unzstd_size" in meta:
        needed = offset + unzstd_offset(payload_size) + int(meta["unzstd_size"])
    if size < needed:
        msg = f"{path} is truncated ({size} bytes, needs {needed})"
        raise InputError(msg, hint="copy it again")
    return PortenvArchive(path, offset, meta)


def check_host(archive: PortenvArchive, host: HostFacts) -> None:
    """Checks 1 to 3: the C library, the architecture, the glibc floor."""
    libc, arch, floor = archive.meta["libc"], archive.meta["arch"], archive.meta["glibc_floor"]
    if libc != "glibc":
        msg = f"this environment needs the C library '{libc}'"
        raise CompatibilityError(msg, hint=f"unpack it on a {libc} machine")
    if host.glibc is None and host.musl:
        msg = "this machine uses musl libc; the environment needs glibc"
        raise CompatibilityError(
            msg, hint="unpack it on a glibc-based Linux (Debian, Ubuntu, RHEL, ...)"
        )
    if host.machine != arch:
        msg = f"this machine is {host.machine}, the environment is built for {arch}"
        hint = f"unpack it on a {arch} machine, or pack the environment for {host.machine}"
        raise CompatibilityError(msg, hint=hint)
    if host.glibc is None:
        msg = "cannot find the glibc version of this machine"
        raise CompatibilityError(msg, hint=f"the environment needs glibc >= {floor}")
    if not version_at_least(host.glibc, floor):
        msg = f"this machine has glibc {host.glibc}, the environment needs glibc >= {floor}"
        hint = "unpack it on a newer Linux, or pack it from packages built for an older glibc"
        raise CompatibilityError(msg, hint=hint)


class _Window:
    """A read-only stream over `size` bytes of an open file from `offset`."""

    def __init__(self, stream: BinaryIO, offset: int, size: int) -> None:
        stream.seek(offset)
        self._stream = stream
        self._left = size

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self._left:
            size = self._left
        data = self._stream.read(size)
        self._left -= len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """What ISA-L's reader calls."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, /) -> int:
        """Streams go forward only."""
        msg = "the payload is read as a stream"
        raise io.UnsupportedOperation(msg)


def check_payload(archive: PortenvArchive) -> None:
    """Check 7: the payload's sha256 is the meta block's, and so is the decompressor's that a
    zstd archive carries (the sh unpacker runs it; this one does not, but refuses the same)."""
    size = archive.number("payload_size")
    _check_sha256(archive, "the payload", PAYLOAD_OFFSET, size, "payload_sha256")
    if "unzstd_sha256" in archive.meta:
        at, length = unzstd_offset(size), archive.number("unzstd_size")
        _check_sha256(archive, "the decompressor", at, length, "unzstd_sha256")


def _check_sha256(archive: PortenvArchive, what: str, offset: int, size: int, key: str) -> None:
    digest = hashlib.sha256()
    with archive.path.open("rb") as stream:
        window = _Window(stream, archive.offset + offset, size)
        while chunk := window.read(_CHUNK):
            digest.update(chunk)
    expected = archive.meta[key]
    if digest.hexdigest() != expected:
        error = HashMismatchError(
            what, str(archive.path), f"sha256:{expected}", f"sha256:{digest.hexdigest()}"
        )
        error.hint = "the archive is damaged: copy it again"
        raise error


def _decompressed(compression: str, window: _Window) -> BinaryIO:
    """The payload's tar stream.

    ISA-L's GzipFile reads all the gzip members the writer makes (tarfile's own ``r|gz`` stops
    after the first one), about three times as fast as the gzip module (an 1.8 GB payload:
    7 s instead of 20 s here); zstd frames are read with the window the writer allows.
    """
    if compression == "zstd":
        reader = zstandard.ZstdDecompressor(max_window_size=1 << ZSTD_WINDOW_LOG_MAX).stream_reader(
            cast("BinaryIO", window), read_across_frames=True
        )
        return cast("BinaryIO", reader)
    gzipped = igzip.GzipFile(fileobj=window, mode="rb")  # type: ignore[no-untyped-call]
    return cast("BinaryIO", gzipped)


@contextmanager
def payload_tar(archive: PortenvArchive) -> Iterator[tarfile.TarFile]:
    """The payload as a streamed tar (``r|``: members in order, memory bounded); damaged
    compressed data is one clear InputError."""
    with archive.path.open("rb") as stream:
        window = _Window(stream, archive.offset + PAYLOAD_OFFSET, archive.number("payload_size"))
        try:
            with (
                _decompressed(archive.meta["compression"], window) as unzipped,
                tarfile.open(fileobj=unzipped, mode="r|") as payload,
            ):
                yield payload
        except _DAMAGED as exc:
            msg = f"the payload of {archive.path.name} is damaged: {exc}"
            raise InputError(msg, hint=_AGAIN) from exc


def packages_text(archive: PortenvArchive) -> str:
    """``.portenv/packages.txt`` of a verified payload: what ``--list`` prints, nothing written."""
    check_payload(archive)
    wanted = ".portenv/packages.txt"
    with payload_tar(archive) as payload:
        for member in payload:
            data = payload.extractfile(member) if member.name == wanted else None
            if data is not None:
                return data.read().decode("utf-8", errors="replace")
    msg = f"the payload of {archive.path.name} has no {wanted}"
    raise InputError(msg, hint="pack it again with a newer portenv")


def _extract(archive: PortenvArchive, work: Path) -> None:
    """Stream the payload out through portenv's checks into the work folder."""
    with payload_tar(archive) as payload:
        what = f"the payload of {archive.path.name}"
        count = extract_safely(payload, work, what=what, symlinks=True)
    paths = sum(len(d) + len(f) for _, d, f in os.walk(work))
    if paths < archive.number("files"):
        msg = f"extracted {paths} of {archive.number('files')} files into {work} ({count} members)"
        raise InputError(msg, hint=_AGAIN)


def _check_manifest(work: Path, archive: PortenvArchive) -> None:
    """Every file the relocation will rewrite is a plain file inside the environment."""
    python = work / archive.meta["python"]
    if not python.is_file() or not os.access(python, os.X_OK):
        msg = f"the environment has no runnable {archive.meta['python']}"
        raise InputError(msg, hint="pack the environment again")
    try:
        manifest = json.loads((work / ".portenv" / "manifest.json").read_text(encoding="utf-8"))
        paths = [str(entry["path"]) for entry in manifest["files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"the relocation manifest of {archive.path.name} is missing or damaged: {exc}"
        raise InputError(msg, hint=_AGAIN) from exc
    root = os.path.realpath(work)
    for relative in paths:
        real = os.path.realpath(os.path.join(work, relative))
        inside = real.startswith(root + os.sep) and not relative.startswith("/")
        if not inside or os.path.islink(os.path.join(work, relative)) or not os.path.isfile(real):
            name = archive.path.name
            msg = f"the relocation manifest of {name} names {relative!r}, not a file inside"
            raise InputError(
                msg, hint="the archive was tampered with: get it again from its source"
            )


def _relocate(work: Path, dest: Destination) -> None:
    try:
        engine.relocate(str(work), str(dest.path))
    except (engine.RelocationError, OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"relocating the environment to {dest.path} failed: {exc}"
        raise RelocationError(
            msg, hint=f"{dest.path} was left as it was; choose a shorter or plainer path"
        ) from exc


def compile_bytecode(work: Path, dest: Destination, python: str | None = None) -> None:
    """``--compile``: the bytecode of every module of the env in `work` that has none, by its
    own python (`python`, relative; default: the relocation manifest's), as ``sh env.sh
    --compile`` writes it."""
    try:
        engine.compile_missing(str(work), python=python)
    except engine.CompileError as exc:
        msg = f"compiling the bytecode failed: {exc}"
        hint = (
            f"{dest.path} was left as it was; leave out --compile: Python then compiles each"
            " module when it is first imported"
        )
        raise RelocationError(msg, hint=hint) from exc


def _checked(request: UnpackRequest, archive: PortenvArchive) -> Destination:
    """Checks 1 to 7, in the order of portenv-unpack.sh; returns the destination."""
    if request.platform_check:
        check_host(archive, HostFacts.detect())
    name = request.env_name or archive.meta.get("env_name") or "env"
    dest = resolve_destination(request.output, name)
    check_path(dest, archive.number("prefix_max"))
    check_existing(dest.path, force=request.force)
    check_free_space(dest, archive.number("unpacked_kib"))
    check_payload(archive)
    return dest


def unpack_portenv(
    request: UnpackRequest, archive: PortenvArchive, reporter: Reporter
) -> UnpackResult:
    """Unpack `archive` (read from `request.archive`) into ``DIR/NAME``: every check first,
    then atomically."""
    dest = _checked(request, archive)
    token = reporter.on_task_start(f"unpacking into {dest.path}", None)
    placement = Placement(dest, force=request.force)
    with placement as work:
        try:
            _extract(archive, work)
            _check_manifest(work, archive)
            files = sum(len(d) + len(f) for _, d, f in os.walk(work))  # what the archive held
            _relocate(work, dest)  # may add bytecode for the sources it rewrites
            if request.compile_bytecode:
                compile_bytecode(work, dest)
        except OSError as exc:
            raise write_failed(dest, exc) from exc
        placement.commit(work)
    reporter.on_task_complete(token)
    return UnpackResult("portenv", dest.path, files, dest.path / "bin" / "activate")

"""The payload: a byte-reproducible tar of the sealed prefix, compressed while it is built.

The tar stream is cut into fixed chunks here (file data read straight into them, never a whole
file at once) and hashed on the way, so that a cached prefix can be checked against the tar it
gave when it was made (see portenv.seal.cache).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from portenv.seal.listing import Entry, listing
from portenv.write.codecs import CHUNK, PayloadInfo, open_compressor

__all__ = [
    "PayloadInfo",
    "PayloadMismatchError",
    "listed_tar_digest",
    "tar_digest",
    "tar_end",
    "tar_header",
    "write_payload",
]

BLOCK = tarfile.BLOCKSIZE


class PayloadMismatchError(Exception):
    """The prefix changed under the writer, or its tar is not the one expected.

    Only a cached prefix can be in that state (see portenv.seal.cache); nothing is published.
    """


def tar_end(offset: int) -> bytes:
    """What ends a tar whose members take `offset` bytes: the last member's padding, two zero
    blocks, and zeros up to a whole 10240-byte record, as tarfile and GNU tar write them."""
    closing = -offset % BLOCK + 2 * BLOCK
    return b"\0" * (closing + -(offset + closing) % tarfile.RECORDSIZE)


def tar_header(entry: Entry) -> bytes:
    """A normalized tar header: no owner, no time, modes 0755/0644, links kept as links."""
    info = tarfile.TarInfo(entry.path)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.kind == "l":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link
        info.mode = 0o777
    elif entry.kind == "d":
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.mode = 0o755 if entry.kind == "x" else 0o644
        info.size = entry.size
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def tar_digest(chunk_digests: Iterable[bytes]) -> str:
    """The tar stream's digest: sha256 of the sha256 of each CHUNK-byte slice, in order.

    A hash list rather than one sha256, so that the slices are hashed on another thread than
    the one that reads the files and builds the tar.
    """
    return hashlib.sha256(b"".join(chunk_digests)).hexdigest()


class _Chunker:
    """Fills fixed-size chunks of the tar stream, hashes them and hands each one on."""

    def __init__(self, out: Callable[[bytes], object]) -> None:
        self._out = out
        self._chunk = bytearray(CHUNK)
        self._view = memoryview(self._chunk)
        self._used = 0
        self._hasher = ThreadPoolExecutor(max_workers=1)
        self._digests: list[Future[bytes]] = []
        self.offset = 0

    def add(self, data: bytes) -> None:
        while data:
            take = min(len(data), CHUNK - self._used)
            self._view[self._used : self._used + take] = data[:take]
            self._used += take
            data = data[take:]
            if self._used == CHUNK:
                self._emit()

    def add_file(self, fd: int, size: int, name: str) -> None:
        """Read `size` bytes of the open file `fd` straight into the chunks."""
        left = size
        while left:
            want = min(left, CHUNK - self._used)
            got = os.readv(fd, [self._view[self._used : self._used + want]])
            if not got:
                msg = f"{name} shrank while it was being packed"
                raise PayloadMismatchError(msg)
            self._used += got
            left -= got
            if self._used == CHUNK:
                self._emit()
        self.add(b"\0" * (-size % BLOCK))

    def _emit(self) -> None:
        piece = bytes(self._view[: self._used])
        self._digests.append(self._hasher.submit(_sha256, piece))
        self.offset += len(piece)
        self._used = 0
        self._out(piece)

    def finish(self) -> str:
        """End the tar; its digest."""
        self.add(tar_end(self.offset + self._used))
        if self._used:
            self._emit()
        digest = tar_digest(f.result() for f in self._digests)
        self._hasher.shutdown()
        return digest

    def abort(self) -> None:
        self._hasher.shutdown(cancel_futures=True)


def _stream(root: Path, entries: list[Entry], chunker: _Chunker) -> Iterator[Entry]:
    for entry in entries:
        chunker.add(tar_header(entry))
        if entry.kind in ("f", "x"):
            fd = os.open(os.path.join(root, entry.path), os.O_RDONLY)
            try:
                chunker.add_file(fd, entry.size, entry.path)
            finally:
                os.close(fd)
        yield entry


def write_payload(
    root: Path,
    sink: BinaryIO,
    *,
    compression: str = "gzip",
    level: int | None = None,
    jobs: int | None = None,
    entries: list[Entry] | None = None,
    advance: Callable[[int], None] | None = None,
) -> PayloadInfo:
    """Write the compressed tar of `root` (or of `entries`, its listing) to `sink`."""
    compressor = open_compressor(compression, sink, level=level, jobs=jobs)
    chunker = _Chunker(compressor.write)
    done = 0  # reported in chunks: a progress bar redrawn per file costs more than the tar
    try:
        for entry in _stream(root, listing(root) if entries is None else entries, chunker):
            done += entry.size
            if advance is not None and done >= CHUNK:
                advance(done)
                done = 0
        tar_sha256 = chunker.finish()
        if advance is not None and done:
            advance(done)
    except BaseException:
        chunker.abort()
        compressor.abort()
        raise
    return replace(compressor.close(), tar_sha256=tar_sha256)


def listed_tar_digest(root: Path, entries: list[Entry]) -> str:
    """The digest the payload of `entries` would have, without compressing or writing it.

    What a writer of another format checks a cached prefix with (seal.cache records this)."""
    chunker = _Chunker(lambda _piece: None)
    try:
        for _entry in _stream(root, entries, chunker):
            pass
        return chunker.finish()
    except BaseException:
        chunker.abort()
        raise

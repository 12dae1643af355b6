"""The payload: a byte-reproducible tar of the sealed prefix, gzip-compressed in parallel."""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["ParallelGzipWriter", "PayloadInfo", "write_payload"]

CHUNK = 4 << 20
"""Each chunk becomes one gzip member; members concatenated are one gzip stream to `gzip -d`."""


@dataclass(frozen=True)
class PayloadInfo:
    """Size and sha256 of the compressed payload, as the meta block records them."""

    size: int
    sha256: str


class ParallelGzipWriter:
    """A write-only stream that gzips fixed-size chunks on several threads, in order.

    The same input always gives the same bytes (fixed chunking, mtime 0, no file name), and
    memory stays bounded: at most `2 * jobs` chunks are in flight.
    """

    def __init__(self, sink: BinaryIO, *, level: int = 6, jobs: int | None = None) -> None:
        self._sink = sink
        self._level = level
        self._jobs = jobs or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(max_workers=self._jobs)
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = bytearray()
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        """Buffer `data`, sending every full chunk to the pool."""
        self._buffer += data
        while len(self._buffer) >= CHUNK:
            self._submit(bytes(self._buffer[:CHUNK]))
            del self._buffer[:CHUNK]
        return len(data)

    def _submit(self, chunk: bytes) -> None:
        self._pending.append(self._pool.submit(gzip.compress, chunk, self._level, mtime=0))
        while len(self._pending) > 2 * self._jobs:
            self._drain_one()

    def _drain_one(self) -> None:
        member = self._pending.popleft().result()
        self._sink.write(member)
        self._digest.update(member)
        self.size += len(member)

    def close(self) -> PayloadInfo:
        """Flush the last chunk and every pending member; return size and sha256."""
        if self._buffer or (self.size == 0 and not self._pending):
            self._submit(bytes(self._buffer))
            self._buffer.clear()
        while self._pending:
            self._drain_one()
        self._pool.shutdown()
        return PayloadInfo(self.size, self._digest.hexdigest())

    def abort(self) -> None:
        """Stop the pool without writing more."""
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(cancel_futures=True)


def _member(root: Path, relative: str) -> tuple[tarfile.TarInfo, Path | None]:
    """A normalized tar header: no owner, no time, modes 0755/0644, links kept as links."""
    path = root / relative
    info = tarfile.TarInfo(relative)
    st = path.lstat()
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
        return info, None
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        return info, None
    if not stat.S_ISREG(st.st_mode):
        msg = f"{relative} is neither a file, a folder nor a symlink"
        raise ValueError(msg)
    info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    info.size = st.st_size
    return info, path


def members(root: Path) -> list[str]:
    """Every path under `root`, relative, sorted so parents come before children."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            found.append(name if base == "." else f"{base}/{name}")
    return sorted(found, key=lambda p: p.split("/"))


def write_payload(
    root: Path, sink: BinaryIO, *, level: int = 6, advance: Callable[[int], None] | None = None
) -> PayloadInfo:
    """Write the tar.gz of `root` to `sink`."""
    writer = ParallelGzipWriter(sink, level=level)
    try:
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.GNU_FORMAT) as archive:  # type: ignore[call-overload]
            for relative in members(root):
                info, path = _member(root, relative)
                if path is None:
                    archive.addfile(info)
                else:
                    with path.open("rb") as stream:
                        archive.addfile(info, stream)
                if advance is not None:
                    advance(info.size)
    except BaseException:
        writer.abort()
        raise
    return writer.close()

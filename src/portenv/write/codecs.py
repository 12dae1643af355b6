"""Payload compressors: parallel gzip members (ISA-L), or one multithreaded zstd frame.

Both take the tar stream in any pieces and give the same bytes for the same stream, whatever
the number of threads: gzip cuts the stream into fixed chunks, one gzip member each (members
one after another are one gzip stream to `gzip -d` and busybox); zstd fixes its job size, and
zstd's multithreaded output depends only on the parameters, not on the worker count.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import BinaryIO, Literal, Protocol, cast

from isal import igzip

from portenv.errors import InputError

__all__ = [
    "CHUNK",
    "CODECS",
    "DEFAULT_COMPRESSION",
    "ZSTD_WINDOW_LOG",
    "ZSTD_WINDOW_LOG_MAX",
    "Codec",
    "Compressor",
    "PayloadInfo",
    "check_level",
    "chosen",
    "codec",
    "open_compressor",
]

CompressionName = Literal["gzip", "zstd"]

CHUNK = 4 << 20
"""Each chunk of the tar stream becomes one gzip member."""
ZSTD_WINDOW_LOG = 25
"""32 MiB: the unpacker's memory stays near 33 MiB (<= 64 MiB, issue 17), and long-distance
matching finds repeats across files of the tar that far apart."""
ZSTD_WINDOW_LOG_MAX = 27
"""The largest window a reader accepts (archives of earlier portenv versions used 128 MiB);
scripts/build-unzstd.sh's WINDOW_LOG_MAX is the same."""
ZSTD_JOB_SIZE = 16 << 20
"""Fixed, so that the frame is the same on any number of threads (the default grows with the
window: 512 MiB jobs would leave one core idle for all but the largest environments)."""


@dataclass(frozen=True)
class Codec:
    """One payload compression: its meta value, member suffix and levels."""

    name: CompressionName
    suffix: str
    min_level: int
    max_level: int
    default_level: int
    engine: str
    """What does the work, for the help text and BENCHMARKS.md."""


CODECS: dict[str, Codec] = {
    "gzip": Codec("gzip", ".tar.gz", 0, 3, 2, "ISA-L igzip, parallel members"),
    "zstd": Codec(
        "zstd", ".tar.zst", 1, 19, 10, "zstd, 32 MiB window, multithreaded; carries its decoder"
    ),
}


DEFAULT_COMPRESSION = "zstd"
"""What portenv archives use when no --compression is given: the smallest that still needs
nothing on the target, since a zstd archive carries its decompressor (write.unzstd)."""


def chosen(name: str | None) -> str:
    """The codec for a --compression value: `name`, or the default when none was given."""
    return DEFAULT_COMPRESSION if name is None else name


def codec(name: str) -> Codec:
    """The codec called `name`, or a clear refusal."""
    try:
        return CODECS[name]
    except KeyError:
        msg = f"unknown compression {name!r}"
        raise InputError(msg, hint=f"use one of: {', '.join(CODECS)}") from None


@dataclass(frozen=True)
class PayloadInfo:
    """Size and sha256 of the compressed payload (the meta block's), and of the tar inside."""

    size: int
    sha256: str
    tar_sha256: str = ""
    """Digest of the uncompressed tar stream (payload.tar_digest): what a cached prefix must
    reproduce."""
    members: tuple[tuple[int, int], ...] = ()
    """Where each gzip member after the first starts: (offset in the payload, offset in the
    tar stream). Any of them is a place where the payload can be cut and each piece
    decompressed on its own core; empty for zstd (one frame)."""
    tar_size: int = 0
    """Bytes of the uncompressed tar stream."""


class Compressor(Protocol):
    """A write-only stream that compresses into a sink and can tell what it wrote."""

    def write(self, data: bytes) -> int: ...

    def close(self) -> PayloadInfo: ...

    def abort(self) -> None: ...


class _CountingSink:
    """Writes through to the sink, counting and hashing the compressed bytes."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def info(self) -> PayloadInfo:
        return PayloadInfo(self.size, self.digest.hexdigest())


def _gzip_member(chunk: bytes, level: int) -> bytes:
    """One gzip member: no name, mtime 0 (ISA-L releases the GIL while it compresses)."""
    return igzip.compress(chunk, level, mtime=0)


class ParallelGzipWriter:
    """Gzips fixed-size chunks on several threads and writes the members in order.

    Memory stays bounded: at most `2 * jobs` chunks are in flight.
    """

    def __init__(self, sink: BinaryIO, *, level: int, jobs: int) -> None:
        self._sink = _CountingSink(sink)
        self._level = level
        self._jobs = jobs
        self._pool = ThreadPoolExecutor(max_workers=jobs)
        self._pending: deque[tuple[Future[bytes], int]] = deque()
        self._buffer = bytearray()
        self._members = 0
        self._starts: list[tuple[int, int]] = []
        self._tar_size = 0

    def write(self, data: bytes) -> int:
        """Buffer `data`, sending every full chunk to the pool."""
        if not self._buffer and len(data) == CHUNK:
            self._submit(data)
            return CHUNK
        self._buffer += data
        while len(self._buffer) >= CHUNK:
            self._submit(bytes(self._buffer[:CHUNK]))
            del self._buffer[:CHUNK]
        return len(data)

    def _submit(self, chunk: bytes) -> None:
        self._pending.append((self._pool.submit(_gzip_member, chunk, self._level), len(chunk)))
        self._members += 1
        while len(self._pending) > 2 * self._jobs:
            self._write_next()

    def _write_next(self) -> None:
        member, tar_bytes = self._pending.popleft()
        if self._sink.size:
            self._starts.append((self._sink.size, self._tar_size))
        self._sink.write(member.result())
        self._tar_size += tar_bytes

    def close(self) -> PayloadInfo:
        """Flush the last chunk and every pending member."""
        if self._buffer or not self._members:
            self._submit(bytes(self._buffer))
            self._buffer.clear()
        while self._pending:
            self._write_next()
        self._pool.shutdown()
        info = self._sink.info()
        return replace(info, members=tuple(self._starts), tar_size=self._tar_size)

    def abort(self) -> None:
        """Stop the pool without writing more."""
        self._pool.shutdown(cancel_futures=True)


class ZstdWriter:
    """One zstd frame with a checksum, compressed by zstd's own worker threads."""

    def __init__(self, sink: BinaryIO, *, level: int, jobs: int) -> None:
        import zstandard

        params = zstandard.ZstdCompressionParameters.from_level(
            level,
            window_log=ZSTD_WINDOW_LOG,
            enable_ldm=True,
            threads=jobs,
            job_size=ZSTD_JOB_SIZE,
            write_checksum=True,
        )
        self._sink = _CountingSink(sink)
        self._tar_size = 0
        self._flush = zstandard.FLUSH_FRAME
        self._writer = zstandard.ZstdCompressor(compression_params=params).stream_writer(
            cast("BinaryIO", self._sink), closefd=False, write_return_read=True
        )

    def write(self, data: bytes) -> int:
        self._tar_size += len(data)
        return int(self._writer.write(data))

    def close(self) -> PayloadInfo:
        self._writer.flush(self._flush)  # ends the frame; the sink stays open
        return replace(self._sink.info(), tar_size=self._tar_size)

    def abort(self) -> None:
        """Nothing is published on failure; the caller drops the sink."""


def check_level(name: str, level: int | None) -> int:
    """The level to use for codec `name`: `level`, or the codec's default when None."""
    chosen = codec(name)
    if level is None:
        return chosen.default_level
    if not chosen.min_level <= level <= chosen.max_level:
        msg = f"--level {level} is not a {name} level"
        hint = f"{name} levels go from {chosen.min_level} to {chosen.max_level}"
        raise InputError(msg, hint=f"{hint} (default {chosen.default_level})")
    return level


def open_compressor(
    name: str, sink: BinaryIO, *, level: int | None = None, jobs: int | None = None
) -> Compressor:
    """A compressor for codec `name` at `level` (the codec's default when None)."""
    chosen = codec(name)
    level = check_level(name, level)
    jobs = jobs or os.cpu_count() or 1
    if chosen.name == "zstd":
        return ZstdWriter(sink, level=level, jobs=jobs)
    return ParallelGzipWriter(sink, level=level, jobs=jobs)

"""Compressed payloads kept beside a cached sealed prefix, so an unchanged lock is not
compressed again.

A sealed prefix cached by an earlier pack (seal.cache) gives the same tar stream every time,
so its compressed payload at one codec and level is the same bytes too: a later pack copies
them (checking their sha256 on the way) instead of reading and compressing every file again.
The payloads live in the cache entry's own folder, so they go when the entry goes, and the
entry's key covers portenv's code, so a portenv with another writer never finds them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

from portenv.errors import OutputError
from portenv.write.atomic import atomic_output
from portenv.write.codecs import PayloadInfo, check_level

__all__ = ["KeptPayloads"]

_SLICE = 1 << 20


class KeptPayloads:
    """The payloads kept in one folder, one per codec and level (``gzip-2.bin`` + ``.json``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _paths(self, compression: str, level: int | None) -> tuple[Path, Path]:
        stem = f"{compression}-{check_level(compression, level)}"
        return self.folder / f"{stem}.bin", self.folder / f"{stem}.json"

    def copy_into(
        self, sink: BinaryIO, *, compression: str, level: int | None, tar_sha256: str
    ) -> PayloadInfo | None:
        """Copy the kept payload of the tar `tar_sha256` to `sink`; None if there is none.

        A payload whose bytes are not the recorded ones is removed and None returned, with
        `sink` back where it was, so the caller compresses afresh.
        """
        data, record = self._paths(compression, level)
        try:
            info = PayloadInfo(**json.loads(record.read_text(encoding="utf-8")))
            source = data.open("rb")
        except (OSError, ValueError, TypeError):
            return None
        info = PayloadInfo(
            info.size,
            info.sha256,
            info.tar_sha256,
            tuple((int(a), int(b)) for a, b in info.members),
            info.tar_size,
        )
        start = sink.tell()
        digest, size = hashlib.sha256(), 0
        with source:
            while info.tar_sha256 == tar_sha256 and (piece := source.read(_SLICE)):
                digest.update(piece)
                size += len(piece)
                sink.write(piece)
        if info.tar_sha256 == tar_sha256 and (size, digest.hexdigest()) == (info.size, info.sha256):
            return info
        sink.seek(start)
        sink.truncate()
        self._drop(data, record)
        return None

    def keep(
        self,
        source: BinaryIO,
        offset: int,
        info: PayloadInfo,
        *,
        compression: str,
        level: int | None,
    ) -> None:
        """Keep the payload `info` describes, at `offset` in `source`, for the next pack.

        Best effort: a full disk or a folder that went away costs the next pack its shortcut,
        never this pack its archive.
        """
        data, record = self._paths(compression, level)
        with contextlib.suppress(OSError, OutputError):
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_output(data, 0o600) as out:
                source.seek(offset)
                _copy(source, out, info.size)
            with atomic_output(record, 0o600) as out:
                out.write(json.dumps(asdict(info)).encode())

    @staticmethod
    def _drop(*paths: Path) -> None:
        for path in paths:
            with contextlib.suppress(OSError):
                path.unlink()


def _copy(source: BinaryIO, out: BinaryIO, size: int) -> None:
    """Copy `size` bytes from where `source` stands."""
    left = size
    while left:
        piece = source.read(min(left, _SLICE))
        if not piece:
            msg = "the payload ended early"
            raise OSError(msg)
        out.write(piece)
        left -= len(piece)

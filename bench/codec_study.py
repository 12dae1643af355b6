"""Codec study: compress portenv's own uncompressed payload tar at several codecs and levels.

``python bench/codec_study.py PAYLOAD.tar.gz`` (run by the bench tool venv, which has zstandard);
prints one JSON object. Single-threaded, in-process, 1 MiB chunks (zstd -15 only below
512 MiB: it is slow): the CPU seconds say what each level costs per core, the sizes what a
``--compression`` option could reach. These are NOT portenv's outputs (portenv has gzip -6
only); they inform the zstd and pack-speed targets.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator

import zstandard

CHUNK = 1 << 20
CODECS: list[tuple[str, str, int]] = [
    ("gzip -1", "gzip", 1),
    ("gzip -4", "gzip", 4),
    ("gzip -6 (portenv today)", "gzip", 6),
    ("zstd -3", "zstd", 3),
    ("zstd -9", "zstd", 9),
    ("zstd -15", "zstd", 15),
]
SLOW = {"zstd -15"}
"""Levels only run on payloads under SLOW_LIMIT bytes (zstd -15 runs at ~7 MB/s here)."""
SLOW_LIMIT = 512 << 20


def chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as stream:
        while data := stream.read(CHUNK):
            yield data


def compress(path: str, codec: str, level: int) -> int:
    size = 0
    feed: Callable[[bytes], bytes]
    if codec == "gzip":
        obj = zlib.compressobj(level, zlib.DEFLATED, 31)
        feed, finish = obj.compress, obj.flush
    else:
        zobj = zstandard.ZstdCompressor(level=level).compressobj()
        feed, finish = zobj.compress, zobj.flush
    for data in chunks(path):
        size += len(feed(data))
    return size + len(finish())


def main() -> int:
    payload = sys.argv[1]
    with tempfile.NamedTemporaryFile(prefix="payload-", suffix=".tar") as tar:
        with gzip.open(payload, "rb") as src:
            while data := src.read(CHUNK):
                tar.write(data)
        tar.flush()
        codecs: list[dict[str, object]] = []
        results: dict[str, object] = {"uncompressed": tar.tell(), "codecs": codecs}
        for label, codec, level in CODECS:
            if label in SLOW and tar.tell() > SLOW_LIMIT:
                continue
            cpu, wall = time.process_time(), time.perf_counter()
            size = compress(tar.name, codec, level)
            codecs.append(
                {
                    "label": label,
                    "size": size,
                    "cpu": time.process_time() - cpu,
                    "wall": time.perf_counter() - wall,
                }
            )
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

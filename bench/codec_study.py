"""Codec study: compress portenv's own uncompressed payload tar at several codecs and levels.

``python bench/codec_study.py PAYLOAD.tar.gz`` (run by the bench tool venv, which has zstandard);
prints one JSON object. Single-threaded, in-process, 1 MiB chunks (the slow levels only on
small payloads): the CPU seconds say what each level costs per core, the sizes what each
codec reaches. portenv's own outputs (on every core) are measured by bench/packing.py; the
rows marked portenv use its parameters (ISA-L level 2; zstd level 10, 2^25 window, long
matching: the default archive, which carries its own decompressor).
"""

from __future__ import annotations

import gzip
import json
import lzma
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator

import zstandard
from isal import isal_zlib

CHUNK = 1 << 20
CODECS: list[tuple[str, str, int]] = [
    ("zlib -1", "gzip", 1),
    ("zlib -4 (conda-pack's gzip)", "gzip", 4),
    ("zlib -6 (portenv before)", "gzip", 6),
    ("isal -2 (portenv's gzip)", "isal", 2),
    ("isal -3", "isal", 3),
    ("zstd -3", "zstd", 3),
    ("zstd -9 (conda-pack's window)", "zstd", 9),
    ("zstd -3 --long=25", "zstd-long", 3),
    ("zstd -6 --long=25", "zstd-long", 6),
    ("zstd -9 --long=25", "zstd-long", 9),
    ("zstd -10 --long=25 (portenv's default)", "zstd-long", 10),
    ("zstd -12 --long=25", "zstd-long", 12),
    ("zstd -15 --long=25", "zstd-long", 15),
    ("zstd -19 --long=25", "zstd-long", 19),
    ("xz -6 (not a portenv option)", "xz", 6),
    ("xz -9e + x86 BCJ filter (not a portenv option)", "xz-x86", 9 | lzma.PRESET_EXTREME),
]
SLOW = {
    "zstd -15 --long=25": 512 << 20,
    "zstd -19 --long=25": 400 << 20,
    "xz -6 (not a portenv option)": 64 << 20,
    "xz -9e + x86 BCJ filter (not a portenv option)": 64 << 20,
}
"""Levels only run on payloads under this many bytes (zstd -19 and xz run at ~1-2 MB/s)."""


def chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as stream:
        while data := stream.read(CHUNK):
            yield data


def compress(path: str, codec: str, level: int) -> int:
    size = 0
    feed: Callable[[bytes], bytes]
    finish: Callable[[], bytes]
    if codec == "gzip":
        obj = zlib.compressobj(level, zlib.DEFLATED, 31)
        feed, finish = obj.compress, obj.flush
    elif codec.startswith("xz"):
        bcj = [{"id": lzma.FILTER_X86}] if codec == "xz-x86" else []
        xobj = lzma.LZMACompressor(
            format=lzma.FORMAT_XZ, filters=[*bcj, {"id": lzma.FILTER_LZMA2, "preset": level}]
        )
        feed, finish = xobj.compress, xobj.flush
    elif codec == "isal":
        iobj = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
        feed, finish = iobj.compress, iobj.flush
    else:
        params = zstandard.ZstdCompressionParameters.from_level(
            level, window_log=25 if codec == "zstd-long" else 0, enable_ldm=codec == "zstd-long"
        )
        zobj = zstandard.ZstdCompressor(compression_params=params).compressobj()
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
            if tar.tell() > SLOW.get(label, tar.tell()):
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

"""Find every file that holds the placeholder and record how to rewrite it."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path

from portenv.model import RelocFile

__all__ = ["binary_regions", "scan_prefix", "walk_files"]


def walk_files(root: Path) -> Iterator[str]:
    """Every regular file under `root` (relative, sorted, symlinks not followed)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                yield os.path.relpath(full, root)


def binary_regions(data: bytes | mmap.mmap, needle: bytes) -> tuple[tuple[int, int], ...]:
    """[offset, length] of each C string that holds `needle`, from its first occurrence to the NUL.

    Several occurrences inside one C string (a search path, say) share one region.
    """
    regions: list[tuple[int, int]] = []
    start = data.find(needle)
    while start != -1:
        end = data.find(b"\0", start)
        if end == -1:
            end = len(data)
        regions.append((start, end - start))
        start = data.find(needle, end)
    return tuple(regions)


def _classify(path: Path, relative: str, needle: bytes) -> RelocFile | None:
    size = path.stat().st_size
    if size < len(needle):
        return None
    with path.open("rb") as stream, mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data.find(needle) == -1:
            return None
        if data.find(b"\0") == -1:
            return RelocFile(relative, "text")
        return RelocFile(relative, "binary", binary_regions(data, needle))


def scan_prefix(root: Path, placeholder: str) -> tuple[RelocFile, ...]:
    """Every file under `root` that holds `placeholder`: NUL-free files are text."""
    needle = placeholder.encode()
    found = (_classify(root / rel, rel, needle) for rel in walk_files(root))
    return tuple(f for f in found if f is not None)

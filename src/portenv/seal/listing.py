"""What a sealed prefix holds, as its payload will list it: paths, kinds, sizes, links.

A cached prefix is checked against the listing it had when it was made before it is packed
again (portenv.seal.cache); the writer packs exactly this listing, in this order.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from portenv.target.update import members

__all__ = ["Entry", "listing", "members"]


@dataclass(frozen=True)
class Entry:
    """One member of the payload, as lstat saw it: the listing a cached prefix must match."""

    path: str
    kind: str
    """``f`` file, ``x`` executable file, ``d`` folder, ``l`` symlink."""
    size: int = 0
    link: str = ""

    def to_json(self) -> list[object]:
        return [self.path, self.kind, self.size, self.link]

    @classmethod
    def from_json(cls, data: list[object]) -> Entry:
        path, kind, size, link = data
        return cls(str(path), str(kind), int(str(size)), str(link))


def _entry(root: Path, relative: str) -> Entry:
    path = os.path.join(root, relative)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return Entry(relative, "l", 0, os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return Entry(relative, "d")
    if not stat.S_ISREG(st.st_mode):
        msg = f"{relative} is neither a file, a folder nor a symlink"
        raise ValueError(msg)
    return Entry(relative, "x" if st.st_mode & 0o111 else "f", st.st_size)


def listing(root: Path) -> list[Entry]:
    """What the payload of `root` holds, in payload order."""
    return [_entry(root, relative) for relative in members(str(root))]

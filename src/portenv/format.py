"""The portenv archive format (docs/format.md) as data: one definition for every side.

The writers (write/), the Python unpacker (unpack/) and the tests read it from here; the sh
unpacker (target/portenv-unpack.sh) cannot import Python, so tests/unit/test_format_sync.py
checks that it reads the same meta keys, validates them the same way and uses the same exit
codes, and tests/unit/test_unpack_cases.py runs one table of good and hostile archives through
both unpackers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import IntEnum

__all__ = [
    "FORBIDDEN_IN_DESTINATION",
    "FORMAT_VERSION",
    "META_KEYS",
    "META_NAME",
    "META_SIZE",
    "PAYLOAD_OFFSET",
    "UNZSTD_NAME",
    "UPDATE_FORMAT",
    "UPDATE_KEYS",
    "Exit",
    "env_name_problem",
    "meta_problem",
]

FORMAT_VERSION = "1"
UPDATE_FORMAT = "update1"
"""The `format` of an update (``portenv delta``): an archive's keys, then UPDATE_KEYS."""
META_NAME = "portenv/meta"
META_SIZE = 4096
"""The meta member: ``key=value`` lines padded with newlines to exactly this size."""
PAYLOAD_OFFSET = 512 + META_SIZE + 512
"""Where the payload's bytes start in an env.tar (after the meta member and its header)."""
FORBIDDEN_IN_DESTINATION = '\n"$`\\'
"""Characters no environment path may hold: scripts quote the prefix in double quotes."""


class Exit(IntEnum):
    """The unpackers' exit codes, the same for ``sh env.sh``, portenv-unpack and portenv unpack."""

    OK = 0
    FAILED = 1
    """Anything else portenv reports (not used by the sh unpacker)."""
    USAGE = 2
    ARCHIVE = 3
    """Unreadable, truncated, of an unknown format, or holding what a payload may not."""
    TARGET = 4
    """This machine cannot run it: architecture, C library, glibc, a missing command."""
    DESTINATION = 5
    """The destination exists, is too long, holds bad characters, is not writable or locked."""
    DISK = 6
    INTEGRITY = 7
    """A sha256 that does not match."""
    EXTRACTION = 8
    """Extracting or relocating failed after the checks passed."""


_NUMBER = r"0|[1-9][0-9]*"
META_KEYS: Mapping[str, str | None] = {
    "format": None,
    "portenv_version": None,
    "platform": None,
    "arch": r".+",
    "libc": r".+",
    "glibc_floor": r"[0-9]+(\.[0-9]+)*",
    "glibc_floor_files": None,
    "unpacked_kib": _NUMBER,
    "files": _NUMBER,
    "compression": None,
    "payload_size": _NUMBER,
    "payload_sha256": r"[0-9a-f]{64}",
    "unzstd_size": _NUMBER,
    "unzstd_sha256": r"[0-9a-f]{64}",
    "prefix_max": _NUMBER,
    "python": r"(?!/)(?!\.\./)(?!\.\.$)(?!.*/\.\./)(?!.*/\.\.$).+",
    "env_name": None,
    "payload_cuts": r"[0-9: ]*",
}
"""Every key of the meta block, in the order portenv writes them, with the pattern its value
must match (None: any value, or checked on its own, as `format` and `compression` are). A key
with a pattern other than ``[0-9: ]*`` must be present; a reader ignores keys it does not know
and takes the first line of a key. `unzstd_size` and `unzstd_sha256` (the decompressor a zstd
archive carries, member UNZSTD_NAME after the payload) are present together or not at all."""

UNZSTD_NAME = "portenv/unzstd.gz"
"""The member after a zstd payload: portenv-unzstd for the archive's arch, gzipped."""

_OPTIONAL = frozenset({"payload_cuts", "unzstd_size", "unzstd_sha256"})

UPDATE_KEYS = (
    "from_sha256",
    "to_sha256",
    "from_id",
    "to_id",
    "adds",
    "changes",
    "removes",
    "new_python",
)
"""An update's own meta keys, after the archive's, in this order (docs/format.md, "Updates")."""


def meta_problem(meta: Mapping[str, str]) -> str | None:
    """The first key of `meta` whose value breaks its pattern (a damaged block), or None."""
    for key, pattern in META_KEYS.items():
        if pattern is None:
            continue
        value = meta.get(key)
        if value is None and key in _OPTIONAL:
            continue
        if value is None or not re.fullmatch(pattern, value):
            return key
    if ("unzstd_size" in meta) != ("unzstd_sha256" in meta) or (
        "unzstd_size" in meta and meta.get("compression") != "zstd"
    ):
        return "unzstd_size"
    return None


def env_name_problem(name: str) -> str | None:
    """Why `name` cannot be an environment's folder name (``--env-name``), or None.

    One plain name, the same for pack (which writes it into the meta block) and the unpackers:
    no ``/``, not ``.`` or ``..``, not an option (``-``), none of the characters an
    environment's path may not hold, no NUL.
    """
    if name in ("", ".", ".."):
        return f"{name!r} is no folder name"
    if name.startswith("-"):
        return f"{name!r} starts with -"
    if any(c in name for c in "/\0" + FORBIDDEN_IN_DESTINATION):
        return f'{name!r} holds a /, a newline, ", $, ` or \\'
    return None

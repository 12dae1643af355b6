"""What this machine is: its ``uname -m``, its C library and glibc version, its conda subdir."""

from __future__ import annotations

import glob
import os
import platform
from dataclasses import dataclass

from portenv.platforms import SUBDIR_ARCH

__all__ = ["HostFacts", "version_at_least"]


@dataclass(frozen=True)
class HostFacts:
    """The facts the target checks of docs/format.md compare an archive with."""

    machine: str
    glibc: str | None
    """``2.36``, or None when this is no glibc system."""
    musl: bool

    @classmethod
    def detect(cls) -> HostFacts:
        """This machine, as the running Python sees it."""
        try:
            found = os.confstr("CS_GNU_LIBC_VERSION") or ""
        except (ValueError, OSError):
            found = ""
        name, _, version = found.partition(" ")
        glibc = version if name == "glibc" and version else None
        return cls(platform.machine(), glibc, bool(glob.glob("/lib/ld-musl-*")))

    @property
    def subdir(self) -> str | None:
        """The conda subdir of this machine, if it is a Linux one portenv knows."""
        return next((s for s, arch in SUBDIR_ARCH.items() if arch == self.machine), None)


def _numbers(version: str) -> list[int]:
    return [int(part) if part.isdigit() else 0 for part in version.split(".")]


def version_at_least(version: str, floor: str) -> bool:
    """Dotted versions compared number by number (2.9 < 2.10), missing parts are 0."""
    a, b = _numbers(version), _numbers(floor)
    width = max(len(a), len(b))
    return a + [0] * (width - len(a)) >= b + [0] * (width - len(b))

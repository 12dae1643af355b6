"""Conda subdirs portenv can target and the machine names they run on."""

from __future__ import annotations

import platform as _platform

from portenv.errors import InputError

__all__ = ["SUBDIR_ARCH", "arch_of", "host_subdir"]

SUBDIR_ARCH: dict[str, str] = {
    "linux-64": "x86_64",
    "linux-aarch64": "aarch64",
    "linux-ppc64le": "ppc64le",
    "linux-s390x": "s390x",
    "linux-armv7l": "armv7l",
}
"""conda subdir -> what ``uname -m`` prints on such a machine."""


def arch_of(subdir: str) -> str:
    """The ``uname -m`` of a Linux subdir, or a clear refusal for other platforms."""
    try:
        return SUBDIR_ARCH[subdir]
    except KeyError:
        msg = f"platform {subdir} is not a Linux platform portenv can pack for"
        raise InputError(msg, hint=f"choose one of: {', '.join(SUBDIR_ARCH)}") from None


def host_subdir() -> str:
    """The conda subdir of the machine running portenv."""
    machine = _platform.machine()
    for subdir, arch in SUBDIR_ARCH.items():
        if arch == machine:
            return subdir
    msg = f"this machine ({machine}) is not a Linux platform portenv knows"
    raise InputError(msg, hint="pass the target platform with -p, e.g. -p linux-64")

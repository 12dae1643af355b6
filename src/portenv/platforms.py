"""Conda subdirs portenv can target and the machine names they run on."""

from __future__ import annotations

import platform as _platform

from portenv.errors import InputError

__all__ = ["SUBDIR_ARCH", "arch_of", "host_subdir", "marker_environment"]

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


_SYSTEMS = {
    "linux": ("posix", "Linux", "linux"),
    "osx": ("posix", "Darwin", "darwin"),
    "win": ("nt", "Windows", "win32"),
}
_MACHINES = {("osx", "arm64"): "arm64", ("win", "64"): "AMD64", ("win", "arm64"): "ARM64"}
_MARKER_ARCH = {"64": "x86_64", "aarch64": "aarch64", "ppc64le": "ppc64le", "arm64": "arm64"}


def marker_environment(subdir: str, python_version: str) -> dict[str, str]:
    """PEP 508 marker values for a conda subdir and a full Python version."""
    family, _, arch = subdir.partition("-")
    os_name, system, sys_platform = _SYSTEMS.get(family, ("posix", "Linux", "linux"))
    machine = _MACHINES.get((family, arch), _MARKER_ARCH.get(arch, arch))
    return {
        "implementation_name": "cpython",
        "implementation_version": python_version,
        "os_name": os_name,
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": system,
        "platform_version": "",
        "python_full_version": python_version,
        "python_version": ".".join(python_version.split(".")[:2]),
        "sys_platform": sys_platform,
    }

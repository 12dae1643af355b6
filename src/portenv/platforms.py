"""Conda subdirs, the machines they run on, and the wheel tags such a machine accepts.

One table names the machine of each subdir (SUBDIR_ARCH for Linux, what ``uname -m`` prints;
`wheel_machine` for every family, as wheel tags and PEP 508 markers spell it), and one ladder
orders the wheel tags a target takes: the planner, the lock check and the resolver use it.
"""

from __future__ import annotations

import platform as _platform

from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms

from portenv.errors import InputError

__all__ = [
    "DEFAULT_GLIBC",
    "SUBDIR_ARCH",
    "arch_of",
    "debian_triplet",
    "host_subdir",
    "marker_environment",
    "platform_tags",
    "version_key",
    "wheel_machine",
    "wheel_tags",
]

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
_OTHER_MACHINES = {
    "osx-64": "x86_64",
    "osx-arm64": "arm64",
    "win-64": "AMD64",
    "win-arm64": "ARM64",
}
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
DEFAULT_GLIBC = "2.28"
"""The glibc a Linux target is taken to have when nothing says otherwise (pixi's default)."""
NEWEST_GLIBC = "2.60"
"""Far beyond any glibc: the ladder for a target whose glibc the archive's floor will decide."""


def version_key(version: str) -> tuple[int, ...]:
    """Order versions like 2.9 < 2.17 < 2.34 (glibc's, and its symbol versions)."""
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def wheel_machine(subdir: str) -> str:
    """The machine as wheel tags and PEP 508's platform_machine spell it (x86_64, arm64,
    AMD64 ...); an unknown subdir gives its own suffix."""
    return SUBDIR_ARCH.get(subdir) or _OTHER_MACHINES.get(subdir) or subdir.partition("-")[2]


def debian_triplet(machine: str) -> str:
    """The multiarch folder of a machine's libraries on Debian (/lib/x86_64-linux-gnu)."""
    return f"{machine}-linux-gnu"


def platform_tags(subdir: str, glibc: str | None = None, osx: str | None = None) -> list[str]:
    """The platform tags a target accepts, most specific first: on Linux manylinux from its
    glibc (default: the newest, for a floor measured later) down to 2.5, each with its legacy
    alias, then ``linux_ARCH``; macOS from its version (default 13.0); Windows its one tag."""
    family = subdir.partition("-")[0]
    machine = wheel_machine(subdir)
    if family == "linux":
        newest = int((glibc or NEWEST_GLIBC).split(".")[1])
        tags = []
        for level in range(newest, 4, -1):
            tags.append(f"manylinux_2_{level}_{machine}")
            if level in _LEGACY_MANYLINUX:
                tags.append(f"{_LEGACY_MANYLINUX[level]}_{machine}")
        return [*tags, f"linux_{machine}"]
    if family == "osx":
        major, _, minor_text = (osx or "13.0").partition(".")
        return list(mac_platforms((int(major), int(minor_text or 0)), machine))
    return [f"win_{machine.lower()}"]


def wheel_tags(python_version: tuple[int, int], platforms: list[str]) -> list[Tag]:
    """Every wheel tag a CPython of that version takes on those platforms, best first."""
    tags = list(cpython_tags(python_version, platforms=platforms))
    tags += compatible_tags(python_version, f"cp{python_version[0]}{python_version[1]}", platforms)
    return tags


def marker_environment(subdir: str, python_version: str) -> dict[str, str]:
    """PEP 508 marker values for a conda subdir and a full Python version."""
    family = subdir.partition("-")[0]
    os_name, system, sys_platform = _SYSTEMS.get(family, ("posix", "Linux", "linux"))
    machine = wheel_machine(subdir)
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

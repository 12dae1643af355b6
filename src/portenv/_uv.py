"""The only module that runs uv: where its binary is, how it is called, how it names a target.

uv comes as a wheel portenv depends on. It resolves and exports PyPI requirements for a
TARGET (a platform and a Python version that are not this machine's), so its
``--python-platform`` value is built here, once, from a conda subdir and the target's glibc.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from portenv.errors import InputError, ResolveError
from portenv.platforms import DEFAULT_GLIBC, wheel_machine

__all__ = ["python_platform", "run_uv", "uv_binary"]

_MANYLINUX_LEVELS = (17, 28, *range(31, 41))
"""The glibc 2.x levels uv's --python-platform names (x86_64-manylinux_2_17 ...)."""
_UV_MACHINES = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64", "AMD64": "x86_64"}
"""Wheel machine -> uv's name; ARM64 Windows and the other Linux machines uv cannot target."""


@functools.cache
def uv_binary() -> str:
    """The uv executable of the `uv` wheel portenv depends on."""
    from uv import find_uv_bin

    return str(find_uv_bin())


def run_uv(
    argv: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run uv (output captured as text); it never downloads a Python of its own."""
    environ = {**os.environ, **(env or {}), "UV_PYTHON_DOWNLOADS": "never"}
    return subprocess.run(
        [uv_binary(), *argv], capture_output=True, text=True, env=environ, cwd=cwd, check=False
    )


def python_platform(subdir: str, glibc: str | None = None) -> str:
    """uv's ``--python-platform`` for a conda subdir: on Linux, the highest manylinux level
    that ``glibc`` (default 2.28) runs; macOS and Windows by their machine.

    >>> python_platform("linux-64", "2.30"), python_platform("osx-arm64")
    ('x86_64-manylinux_2_28', 'aarch64-apple-darwin')
    """
    family = subdir.partition("-")[0]
    machine = _UV_MACHINES.get(wheel_machine(subdir))
    if machine is not None and family == "linux":
        minor = int((glibc or DEFAULT_GLIBC).split(".")[1])
        levels = [level for level in _MANYLINUX_LEVELS if level <= minor]
        if not levels:
            msg = f"glibc {glibc} is below manylinux 2.17, the oldest level of PyPI's wheels"
            raise InputError(msg, hint="target glibc 2.17 or newer (pack --glibc 2.17)")
        return f"{machine}-manylinux_2_{levels[-1]}"
    if machine is not None and family == "osx":
        return f"{machine}-apple-darwin"
    if machine is not None and family == "win":
        return f"{machine}-pc-windows-msvc"
    msg = f"PyPI dependencies cannot be resolved for platform {subdir}"
    raise ResolveError(msg, hint="drop the platform, or move the dependency to conda")

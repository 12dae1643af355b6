"""Copy CPython's own files out of an installation prefix, without site-packages or tests."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from portenv.errors import StageError
from portenv.stage.cpython_inspect import BaseInterpreter

__all__ = ["DEFAULT_EXCLUDES", "SITE_DIRS", "copy_interpreter", "is_excluded"]

DEFAULT_EXCLUDES = (
    "test",
    "*/test",
    "*/tests",
    "idlelib",
    "tkinter",
    "turtle.py",
    "turtledemo",
    "lib-dynload/_tkinter*",
    "lib-dynload/_test*",
    "lib-dynload/_ctypes_test*",
    "lib-dynload/_xxtestfuzz*",
    "lib-dynload/xxlimited*",
    "config-*/*.a",
    "*.opt-[12].pyc",
)
"""Left out of the standard library: globs matched against paths relative to lib/python3.X.

The test suite (``test`` and the packages' own ``tests``: lib2to3, ctypes, distutils, sqlite3,
unittest), IDLE, tkinter (its extension pulls in 23 X11 libraries) and the static libpython
(~50 MB, only for linking a new interpreter) and the bytecode for ``-O``/``-OO`` (a third of
the size; python compiles it when asked to). ``ensurepip`` stays: ``python -m venv`` needs it.
"""
SITE_DIRS = ("site-packages", "dist-packages")
"""Directories of the standard library whose content belongs to the installation, not to CPython.

They are created empty: the base's packages and ``.pth`` files never leak into the copy.
"""
_NEVER = ("*.pth", "EXTERNALLY-MANAGED")
"""Never copied: site hooks, and the distribution's PEP 668 marker that would refuse pip."""
_PYC = re.compile(r"^(?P<module>[^.]+)\..*\.pyc$")


def is_excluded(relative: str, patterns: Sequence[str]) -> bool:
    """True if ``relative`` (a stdlib path, posix form) or its bytecode source is excluded.

    >>> is_excluded("__pycache__/turtle.cpython-312.pyc", ["turtle.py"])
    True
    """
    path = PurePosixPath(relative)
    if any(fnmatch.fnmatchcase(path.as_posix(), p) for p in patterns):
        return True
    if path.parent.name == "__pycache__":
        match = _PYC.match(path.name)
        if match:
            path = path.parent.parent / f"{match.group('module')}.py"
    name = path.as_posix()
    return any(fnmatch.fnmatchcase(name, p) for p in patterns) or any(
        fnmatch.fnmatchcase(path.name, p) for p in _NEVER
    )


def copy_interpreter(
    base: BaseInterpreter, dest: Path, exclude: Sequence[str], *, headers: bool
) -> dict[Path, Path]:
    """Copy the interpreter into ``dest``; return every copied file -> its original.

    The binary becomes bin/python3.X (python3 and python link to it); the standard library,
    headers and config script keep their place relative to the prefix. libpython and the other
    shared libraries are copied later, from the resolved closure.
    """
    copied: dict[Path, Path] = {}
    bin_dir = dest / "bin"
    bin_dir.mkdir(parents=True)
    name = f"python{base.short_version}"
    _copy_file(base.executable, bin_dir / name, copied)
    for link in ("python3", "python"):
        (bin_dir / link).symlink_to(name)
    for stdlib in dict.fromkeys((base.stdlib, base.platstdlib)):
        _copy_dir(stdlib, dest / _inside(base, stdlib), exclude, copied)
    if headers:
        _copy_headers(base, dest, copied)
    if base.wheel_dir is not None and _is_inside(base, base.wheel_dir):
        target = dest / _inside(base, base.wheel_dir)
        for wheel in sorted(base.wheel_dir.glob("*.whl")):
            target.mkdir(parents=True, exist_ok=True)
            _copy_file(wheel, target / wheel.name, copied)
    _drop_broken_links(dest)
    return copied


def _copy_headers(base: BaseInterpreter, dest: Path, copied: dict[Path, Path]) -> None:
    """C headers, pythonX.Y-config and the pkg-config files: what building extensions needs."""
    for include in base.includes:
        if _is_inside(base, include):
            _copy_dir(include, dest / _inside(base, include), (), copied)
            _unwrap_pyconfig(base, dest / _inside(base, include), copied)
    version = f"{base.short_version}{base.abiflags}"
    config = base.prefix / "bin" / f"python{version}-config"
    if config.is_file():
        _copy_file(config.resolve(), dest / "bin" / config.name, copied)
        (dest / "bin" / "python3-config").symlink_to(config.name)
    pkgconfig = base.prefix / "lib" / "pkgconfig"
    for pc in sorted(pkgconfig.glob(f"python-{base.short_version}*.pc")):
        _copy_file(pc.resolve(), dest / "lib" / "pkgconfig" / pc.name, copied)
    stable_abi = (base.libdir or base.prefix / "lib") / "libpython3.so"
    if stable_abi.is_file() and _is_inside(base, stable_abi):
        _copy_file(stable_abi, dest / "lib" / stable_abi.name, copied)


def _unwrap_pyconfig(base: BaseInterpreter, include: Path, copied: dict[Path, Path]) -> None:
    """Debian's pyconfig.h only includes <x86_64-linux-gnu/python3.X/pyconfig.h>: copy that."""
    real = base.prefix / "include" / base.multiarch / include.name / "pyconfig.h"
    if base.multiarch and real.is_file() and (include / "pyconfig.h").is_file():
        (include / "pyconfig.h").unlink()
        _copy_file(real, include / "pyconfig.h", copied)


def _is_inside(base: BaseInterpreter, path: Path) -> bool:
    return path == base.prefix or base.prefix in path.parents


def _inside(base: BaseInterpreter, path: Path) -> Path:
    if not _is_inside(base, path):
        msg = f"python's standard library is outside its prefix: {path} (prefix {base.prefix})"
        raise StageError(msg, hint="this installation layout is not supported")
    return path.relative_to(base.prefix)


def _copy_file(source: Path, target: Path, copied: dict[Path, Path]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target, follow_symlinks=False)
    if not target.is_symlink():
        target.chmod(target.stat().st_mode | 0o200)  # patchelf and strip write in place
        copied[target] = source


def _copy_dir(source: Path, target: Path, exclude: Sequence[str], copied: dict[Path, Path]) -> None:
    """Copy one tree; modification times are kept so the installed .pyc files stay valid."""
    for here, dirs, files in os.walk(source):
        rel = Path(here).relative_to(source)
        (target / rel).mkdir(parents=True, exist_ok=True)
        if len(rel.parts) == 1 and rel.name in SITE_DIRS:
            dirs.clear()
            continue
        kept = []
        for name in sorted(dirs):
            path = Path(here) / name
            if path.is_symlink():
                files.append(name)
            elif not is_excluded((rel / name).as_posix(), exclude):
                kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            if not is_excluded((rel / name).as_posix(), exclude):
                _copy_file(Path(here) / name, target / rel / name, copied)


def _drop_broken_links(dest: Path) -> None:
    """Symlinks into the rest of the system (Debian's config dir) would dangle on the target."""
    for here, dirs, files in os.walk(dest):
        for name in (*dirs, *files):
            path = Path(here) / name
            if path.is_symlink() and (os.path.isabs(os.readlink(path)) or not path.exists()):
                path.unlink()

"""Ask a CPython where its base installation is, and refuse the kinds portenv cannot copy."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portenv.elf import scan_elf
from portenv.errors import InputError
from portenv.stage.cpython_closure import read_elf

__all__ = [
    "MIN_VERSION",
    "BaseInterpreter",
    "check_supported",
    "inspect_interpreter",
    "interpreter_glibc",
    "is_standalone_build",
]

MIN_VERSION = (3, 8)
_FROM_SOURCE = "use a CPython built from source (pyenv, ./configure && make install)"

# Runs under the interpreter being inspected, so it stays valid Python 2 as well: an old
# interpreter gets a clear refusal instead of a SyntaxError.
_QUERY = r"""
import json, os, platform, sys, sysconfig
def build_vars():
    try:
        name = sysconfig._get_sysconfigdata_name()
        return __import__(name, globals(), locals(), ["build_time_vars"], 0).build_time_vars
    except Exception:
        return {}
keys = ("ABIFLAGS", "LDLIBRARY", "INCLUDEPY", "CONFINCLUDEPY", "LIBDIR", "MULTIARCH",
        "WHEEL_PKG_DIR")
print(json.dumps({
    "implementation": platform.python_implementation(),
    "version": list(sys.version_info[:3]),
    "platform": sys.platform,
    "executable": sys.executable,
    "base_executable": getattr(sys, "_base_executable", None),
    "base_prefix": getattr(sys, "base_prefix", sys.prefix),
    "build_prefix": build_vars().get("prefix"),
    "stdlib": sysconfig.get_path("stdlib"),
    "platstdlib": sysconfig.get_path("platstdlib"),
    "vars": dict((k, sysconfig.get_config_var(k)) for k in keys),
}))
"""


@dataclass(frozen=True)
class BaseInterpreter:
    """A CPython installation that a portable copy can be made from (never a venv)."""

    executable: Path
    """The real interpreter binary of the base installation."""
    prefix: Path
    """``sys.base_prefix``: where the installation is now."""
    version: tuple[int, int, int]
    ldlibrary: str | None
    """``LDLIBRARY``: ``libpython3.12.so``, or a ``.a`` for a build linked statically."""
    build_prefix: str
    """The ``--prefix`` it was configured with: the paths its text files hold."""
    abiflags: str
    stdlib: Path
    platstdlib: Path
    includes: tuple[Path, ...] = ()
    """INCLUDEPY and, when the distribution splits it off, CONFINCLUDEPY (pyconfig.h)."""
    libdir: Path | None = None
    wheel_dir: Path | None = None
    """Debian's WHEEL_PKG_DIR: where its ensurepip takes the pip wheel from."""
    multiarch: str = ""
    """``x86_64-linux-gnu``: Debian keeps the real pyconfig.h in include/<multiarch>/."""

    @property
    def short_version(self) -> str:
        """``3.12`` for 3.12.1: names bin/python3.X and lib/python3.X."""
        return "{}.{}".format(*self.version)


def inspect_interpreter(python: Path) -> BaseInterpreter:
    """Run ``python`` to find its base installation; refuse what cannot be made portable.

    A venv's interpreter resolves to its base installation. Raises InputError for PyPy,
    Python < 3.8, non-Linux builds, statically linked executables, conda pythons and copies
    that are already relocatable without being python-build-standalone (PBS) builds. A PBS
    build (incl. uv-managed pythons) is accepted: it is relocatable already, and is copied,
    checked and bundled like any other installation.
    """
    info = _query(python)
    executable = _base_executable(info)
    check_supported(info, python, executable)
    variables: dict[str, Any] = info["vars"]
    includes = [variables.get("INCLUDEPY"), variables.get("CONFINCLUDEPY")]
    return BaseInterpreter(
        executable=executable,
        prefix=Path(info["base_prefix"]),
        version=(info["version"][0], info["version"][1], info["version"][2]),
        ldlibrary=variables.get("LDLIBRARY") or None,
        build_prefix=str(info["build_prefix"] or info["base_prefix"]),
        abiflags=str(variables.get("ABIFLAGS") or ""),
        stdlib=Path(info["stdlib"]),
        platstdlib=Path(info["platstdlib"]),
        includes=tuple(dict.fromkeys(Path(p) for p in includes if p and Path(p).is_dir())),
        libdir=_existing_dir(variables.get("LIBDIR")),
        wheel_dir=_existing_dir(variables.get("WHEEL_PKG_DIR")),
        multiarch=str(variables.get("MULTIARCH") or ""),
    )


def _existing_dir(value: object) -> Path | None:
    return Path(value) if isinstance(value, str) and value and Path(value).is_dir() else None


def _query(python: Path) -> dict[str, Any]:
    if not os.access(python, os.X_OK) or Path(python).is_dir():
        msg = f"python interpreter not found: {python}"
        raise InputError(msg, hint="pass the path of a python3.X executable")
    argv = [str(python), "-E", "-s", "-S", "-c", _QUERY]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        msg = f"cannot run python interpreter {python}: {exc}"
        raise InputError(msg, hint="pass a CPython for this machine") from exc
    if proc.returncode != 0:
        errors = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        reason = errors[-1] if errors[0].startswith("Traceback") else errors[0]
        msg = f"cannot run python interpreter {python}: {reason.strip()}"
        raise InputError(msg, hint="pass a CPython for this machine")
    try:
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        msg = f"not a python interpreter: {python} did not answer the query"
        raise InputError(msg, hint="pass the path of a python3.X executable") from exc
    return result


def _base_executable(info: dict[str, Any]) -> Path:
    """The base installation's binary: a venv's python is a symlink to, or copy of, it."""
    prefix = Path(info["base_prefix"])
    major, minor = info["version"][:2]
    named = prefix / "bin" / f"python{major}.{minor}"
    if named.is_file():
        return named.resolve()
    return Path(info["base_executable"] or info["executable"]).resolve()


def check_supported(info: dict[str, Any], python: Path, executable: Path) -> None:
    """Raise InputError naming why the interpreter ``info`` describes cannot be copied."""
    prefix = Path(info["base_prefix"])
    name = f"{info['implementation']} {'.'.join(map(str, info['version']))}"
    if info["implementation"] != "CPython":
        msg = f"not a CPython interpreter: {python} is {name}"
        raise InputError(msg, hint=_FROM_SOURCE)
    if tuple(info["version"][:2]) < MIN_VERSION:
        msg = f"python too old: {python} is {name}, portenv needs CPython 3.8 or newer"
        raise InputError(msg, hint="use CPython 3.8 or newer")
    if info["platform"] != "linux":
        msg = f"not a Linux interpreter: {python} is built for {info['platform']}"
        raise InputError(msg, hint=_FROM_SOURCE)
    if (prefix / "conda-meta").is_dir():
        msg = f"conda python not supported by --python: {prefix} is a conda environment"
        raise InputError(msg, hint="pack it as a pixi project instead")
    _check_executable(executable)
    if _is_relocated_copy(executable) and not is_standalone_build(info):
        msg = (
            f"already relocated python not supported: {prefix} has $ORIGIN-relative library "
            "paths but is no python-build-standalone build (a portable copy, e.g. a portenv env)"
        )
        raise InputError(msg, hint=_FROM_SOURCE + ", your distribution's python3 or a PBS build")


def _check_executable(executable: Path) -> None:
    elf = read_elf(executable)
    if elf is None:
        msg = f"not a Linux ELF executable: {executable}"
        raise InputError(msg, hint=_FROM_SOURCE)
    if elf.interpreter is None:
        msg = f"statically linked python not supported: {executable} cannot load C extensions"
        raise InputError(msg, hint=_FROM_SOURCE + " (it may be configured without --enable-shared)")
    host = read_elf(Path("/proc/self/exe"))
    if host is not None and elf.machine != host.machine:
        msg = f"python built for another machine: {executable} ({elf.machine})"
        raise InputError(msg, hint=f"pass a CPython for {platform.machine()}")


def _is_relocated_copy(executable: Path) -> bool:
    elf = read_elf(executable)
    return elf is not None and any("$ORIGIN" in p for p in (*elf.rpath, *elf.runpath))


def is_standalone_build(info: dict[str, Any]) -> bool:
    """python-build-standalone (which uv installs) is configured with --prefix=/install."""
    prefix = Path(info["base_prefix"])
    markers = (prefix / "PYTHON.json", prefix.parent / "PYTHON.json")
    return info["build_prefix"] == "/install" or any(m.is_file() for m in markers)


def interpreter_glibc(base: BaseInterpreter, limit: int = 3) -> list[tuple[str, str]]:
    """(version, file) of the base's own ELF files that need the newest glibc: the executable,
    libpython and the standard library's extension modules (what `plan` can know cheaply)."""
    files = [base.executable, *sorted((base.platstdlib / "lib-dynload").glob("*.so"))]
    if base.libdir is not None and base.ldlibrary and base.ldlibrary.endswith(".so"):
        files.append((base.libdir / base.ldlibrary).resolve())
    relative = [str(f.absolute().relative_to("/")) for f in files if f.is_file()]
    facts = scan_elf(Path("/"), relative)
    found = []
    for version, file in facts.floor_files(limit):
        path = Path("/", file)
        shown = path.relative_to(base.prefix) if base.prefix in path.parents else path
        found.append((version, str(shown)))
    return found

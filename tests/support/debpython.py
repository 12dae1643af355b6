"""A relocatable CPython of another architecture, made from Debian's packages of that architecture.

The cross-platform tests need a runnable ``python`` conda package for linux-aarch64 on an
x86_64 machine, with conda-forge out of reach. Debian's arm64 ``python3.X-minimal`` and
``libpython3.X-stdlib`` (plus their libraries) are unpacked into a sysroot and made portable
with portenv's own ``make_portable``, given a library resolver over the sysroot and told not
to run the copy. Only this fixture runs it, through qemu (``QEMU_LD_PREFIX`` = the sysroot, for
the loader), to compile the bytecode and prove it starts.

Debian's ``site.py`` adds lib/python3.X/site-packages only inside a venv, while conda packages
(and rattler, for noarch: python) install there; a ``sitecustomize`` adds it, as conda-forge's
python has it by default.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from portenv.stage.cpython import make_portable
from portenv.stage.cpython_closure import LibraryResolver
from portenv.stage.cpython_inspect import BaseInterpreter
from tests.support import debarch
from tests.support.pyrelocate import EXCLUDES

__all__ = [
    "DEBIAN_PYTHON",
    "DebianPython",
    "debian_python_debs",
    "relocate_debian_python",
    "unpack_debian_python",
]

DEBIAN_PYTHON = "3.11"
"""The CPython of the host's Debian release (bookworm): its packages exist for every arch."""
_TRIPLETS = {"aarch64": "aarch64-linux-gnu", "x86_64": "x86_64-linux-gnu"}
_SITECUSTOMIZE = """\
# Written by portenv's test fixture: conda installs packages into lib/python3.X/site-packages,
# which Debian's site.py adds only inside a venv.
import os
import site
import sys

site.addsitedir(
    os.path.join(sys.prefix, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
)
"""


@dataclass(frozen=True)
class DebianPython:
    """Debian's CPython of one architecture, unpacked (not installed) into ``sysroot``."""

    machine: str
    sysroot: Path
    version: str
    """``3.11.2``, from the package's file name."""

    @property
    def short_version(self) -> str:
        """``3.11``: names bin/python3.X and lib/python3.X."""
        return ".".join(self.version.split(".")[:2])

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a program of this architecture through qemu, its loader from the sysroot."""
        env = {**os.environ, "QEMU_LD_PREFIX": str(self.sysroot)}
        return subprocess.run(argv, env=env, capture_output=True, text=True, check=False)


def debian_python_debs(machine: str) -> debarch.ForeignDebs:
    """The .debs of Debian's python3.X-minimal + stdlib and every library they need."""
    names = [f"python{DEBIAN_PYTHON}-minimal", f"libpython{DEBIAN_PYTHON}-stdlib"]
    return debarch.foreign_debs(machine, names)


def unpack_debian_python(debs: debarch.ForeignDebs, machine: str, sysroot: Path) -> DebianPython:
    """Unpack the packages into ``sysroot`` and read the exact version off the file name."""
    debarch.extract(debs.files, sysroot)
    found = re.match(
        r"python\d\.\d+-minimal_([\d.]+)", debs.named(f"python{DEBIAN_PYTHON}-minimal").name
    )
    if found is None:
        msg = f"cannot read the python version of {debs.files}"
        raise RuntimeError(msg)
    return DebianPython(machine, sysroot, found.group(1).rstrip("."))


def _base(python: DebianPython) -> BaseInterpreter:
    """What inspect_interpreter would report for Debian's python, known without running it."""
    usr = python.sysroot / "usr"
    stdlib = usr / "lib" / f"python{python.short_version}"
    major, minor, micro = (int(p) for p in python.version.split("."))
    return BaseInterpreter(
        executable=usr / "bin" / f"python{python.short_version}",
        prefix=usr,
        version=(major, minor, micro),
        ldlibrary=f"libpython{python.short_version}.a",
        build_prefix="/usr",
        abiflags="",
        stdlib=stdlib,
        platstdlib=stdlib,
        multiarch=_TRIPLETS[python.machine],
    )


def relocate_debian_python(python: DebianPython, dest: Path) -> Path:
    """Write a relocatable copy of the unpacked python into ``dest``, compiled and smoke-tested."""
    triplet = _TRIPLETS[python.machine]
    dirs = [python.sysroot / d / triplet for d in ("lib", "usr/lib")]
    resolver = LibraryResolver(cache=(), defaults=dirs)
    portable = make_portable(
        _base(python),
        dest,
        exclude=(*EXCLUDES, "sitecustomize.py", "dist-packages"),
        headers=False,
        strip=False,
        resolver=resolver,
        probe=False,
    )
    stdlib = dest / "lib" / f"python{python.short_version}"
    (stdlib / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    (portable.site_packages / "README.txt").write_text(
        "This directory exists so that 3rd party packages can be installed here.\n"
    )
    exe = str(portable.executable)
    compile_all = [exe, "-I", "-B", "-m", "compileall", "-q", "-f", "-j0"]
    compile_all += ["--invalidation-mode", "unchecked-hash", str(stdlib)]
    probe = [exe, "-c", "import sys, ssl, sqlite3, ctypes, json, hashlib; print(sys.prefix)"]
    for argv in (compile_all, probe):
        done = python.run(argv)
        if done.returncode != 0:
            msg = f"the relocated {python.machine} python failed: {argv}\n{done.stderr}"
            raise RuntimeError(msg)
    if Path(done.stdout.strip()) != dest:
        msg = f"the relocated python finds another prefix: {done.stdout.strip()} (not {dest})"
        raise RuntimeError(msg)
    return dest

"""Turn a local CPython install into the relocatable tree of the test channel's python package.

The test channel needs a real, runnable ``python`` conda package, but conda-forge is
out of reach, so we take a CPython that is already installed on the machine and make
it position independent with portenv's own ``portenv.stage.cpython.make_portable`` (the
same code ``portenv pack --python`` uses). What is conda-specific stays here: finding the
interpreter for a test run, unchecked-hash bytecode and the prefix token for rattler-build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from portenv.errors import PortenvError
from portenv.stage.cpython import DEFAULT_EXCLUDES, inspect_interpreter, make_portable
from portenv.stage.cpython_patch import patchelf_binary as _patchelf_binary

#: Text files that mention the original install prefix get this token instead, so the
#: recipe's build script can swap in ``$PREFIX`` with a plain ``sed`` and rattler-build
#: then records them as text prefix files (like conda-forge's python does).
PREFIX_TOKEN = "@@PORTENV_TEST_PYTHON_PREFIX@@"

#: The CPython versions ``portenv pack --python`` supports (the tests try those installed).
SUPPORTED_MINORS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")

#: The conda package leaves out ensurepip as well: conda environments get pip as a package.
EXCLUDES = (*DEFAULT_EXCLUDES, "ensurepip")


@dataclass(frozen=True)
class BasePython:
    """A local CPython install that a relocatable copy is made from."""

    prefix: Path
    version: str

    @property
    def short_version(self) -> str:
        """``3.12`` for ``3.12.1``: names bin/python3.X and lib/python3.X."""
        return ".".join(self.version.split(".")[:2])


def find_base_python(minor: str = "3.12") -> BasePython:
    """Locate a CPython ``minor`` install without hard-coding this machine's paths.

    PORTENV_TEST_PYTHON (an interpreter, or an install prefix) wins and must be right;
    otherwise pyenv's ``minor``, then ``python<minor>`` on PATH.
    """
    explicit = os.environ.get("PORTENV_TEST_PYTHON")
    candidates = [_explicit_interpreter(explicit, minor)] if explicit else []
    candidates = candidates or _discovered_interpreters(minor)
    for candidate in candidates:
        base = _query_interpreter(candidate)
        if base is not None and base.short_version == minor:
            return base
    where = f"PORTENV_TEST_PYTHON={explicit}" if explicit else "pyenv or PATH"
    msg = f"no CPython {minor} found via {where}: set PORTENV_TEST_PYTHON to a python{minor}"
    raise RuntimeError(msg)


def installed_pythons(minors: Sequence[str] = SUPPORTED_MINORS) -> dict[str, Path]:
    """``minor -> interpreter`` for every supported CPython that pyenv or PATH offers."""
    found: dict[str, Path] = {}
    for minor in minors:
        try:
            base = find_base_python(minor)
        except RuntimeError:
            continue
        found[minor] = base.prefix / "bin" / f"python{minor}"
    return found


def distribution_python() -> Path | None:
    """The operating system's own python3 (found on the default PATH), if there is one."""
    found = shutil.which("python3", path=os.defpath)
    return Path(found) if found else None


def _explicit_interpreter(value: str, minor: str) -> str:
    """Accept either an interpreter path or the prefix it is installed in."""
    path = Path(value).expanduser()
    return str(path / "bin" / f"python{minor}") if path.is_dir() else str(path)


def _discovered_interpreters(minor: str) -> list[str]:
    """Interpreters to try when none is named: pyenv's first, then PATH."""
    found: list[str] = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        proc = subprocess.run([pyenv, "prefix", minor], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            found += [str(Path(line) / "bin" / f"python{minor}") for line in proc.stdout.split()]
    on_path = shutil.which(f"python{minor}")
    if on_path:
        found.append(on_path)
    return found


def _query_interpreter(executable: str) -> BasePython | None:
    """Ask an interpreter for its base installation and version (resolves venvs)."""
    try:
        base = inspect_interpreter(Path(executable))
    except PortenvError:
        return None
    return BasePython(prefix=base.prefix, version="{}.{}.{}".format(*base.version))


def relocate_python(base: BasePython, dest: Path) -> Path:
    """Write a relocatable copy of ``base`` into ``dest`` (which must not exist)."""
    interpreter = inspect_interpreter(base.prefix / "bin" / f"python{base.short_version}")
    portable = make_portable(interpreter, dest, exclude=EXCLUDES)
    # Packages cannot carry empty directories: without a file here an installed env
    # has no site-packages until some noarch package creates it.
    (portable.site_packages / "README.txt").write_text(
        "This directory exists so that 3rd party packages can be installed here.\n"
    )
    compile_bytecode(dest, base.short_version)
    tokenize_prefix(dest, base.prefix)
    return dest


def patchelf_binary() -> str:
    """The patchelf portenv uses (rattler-build needs it on PATH too)."""
    return str(_patchelf_binary())


def tokenize_prefix(dest: Path, old_prefix: Path) -> list[Path]:
    """Replace the build prefix in text files by PREFIX_TOKEN (binaries keep it: unused).

    Runs after compile_bytecode, whose .pyc files are binary and so never rewritten here.
    """
    needle = os.fsencode(str(old_prefix))
    changed: list[Path] = []
    for path in sorted(dest.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if needle not in data or b"\0" in data:
            continue
        path.write_bytes(data.replace(needle, PREFIX_TOKEN.encode()))
        changed.append(path)
        if path.suffix == ".py":
            # Its bytecode still holds the old text and, being unchecked-hash, would
            # win over the source forever: let Python compile the installed source.
            for pyc in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
                pyc.unlink()
    return changed


def compile_bytecode(dest: Path, short_version: str) -> None:
    """Precompile the stdlib with the relocated interpreter itself (doubles as a smoke test).

    Unchecked-hash .pyc files stay valid whatever mtimes the package installer sets, so an
    installed environment never rewrites its own stdlib bytecode.
    """
    python = dest / "bin" / f"python{short_version}"
    stdlib = dest / "lib" / f"python{short_version}"
    argv = [str(python), "-I", "-B", "-m", "compileall", "-q", "-f", "-j0"]
    argv += ["--invalidation-mode", "unchecked-hash", "-x", "lib2to3/tests/data", str(stdlib)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str]) -> int:
    """``python -m tests.support.pyrelocate DEST``: relocate the found CPython 3.12."""
    base = find_base_python()
    relocate_python(base, Path(argv[0]))
    print(f"relocated {base.version} from {base.prefix} into {argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

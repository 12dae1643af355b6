"""Make an ordinary CPython installation portable: auditwheel for a whole interpreter.

``make_portable`` copies the installation (no site-packages content, no test suite), bundles
every shared library it loads except glibc's into lib/, points every ELF file at them with an
``$ORIGIN``-relative DT_RPATH and makes sysconfig and pythonX.Y-config follow the copy's
location. The result runs from any folder on a Linux machine with glibc >= its floor.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from portenv.elf import scan_elf
from portenv.errors import StageError
from portenv.model import HostLibrary, StagedPrefix, Subdir
from portenv.stage import DEFAULT_PREFIX_MAX, make_placeholder
from portenv.stage.cpython_closure import (
    Closure,
    ElfInfo,
    LibraryResolver,
    Needer,
    read_elf,
    resolve_closure,
)
from portenv.stage.cpython_inspect import BaseInterpreter, inspect_interpreter
from portenv.stage.cpython_patch import origin_rpath, set_rpaths, strip_debug
from portenv.stage.cpython_sysconfig import (
    relocate_config_script,
    relocate_pkgconfig,
    relocate_sysconfigdata,
)
from portenv.stage.cpython_tree import DEFAULT_EXCLUDES, copy_interpreter

__all__ = [
    "DEFAULT_EXCLUDES",
    "DLOPENED_BY_GLIBC",
    "BaseInterpreter",
    "BundledLibrary",
    "PortableInterpreter",
    "inspect_interpreter",
    "make_portable",
    "stage_portable_python",
]

DLOPENED_BY_GLIBC = ("libgcc_s.so.1",)
"""Bundled although nothing names it in DT_NEEDED: glibc dlopens it to unwind a thread in
pthread_exit and pthread_cancel, which CPython calls when a daemon thread meets interpreter
shutdown. Without it (a bare glibc system has none) that aborts with "libgcc_s.so.1 must be
installed for pthread_exit to work". glibc's dlopen does find it next to libpython: the lookup
on behalf of libc.so.6 falls back to the executable's DT_RPATH (``$ORIGIN/../lib``)."""
_PROBE = """\
import json, sys, sysconfig
print(json.dumps({"prefix": sys.prefix, "purelib": sysconfig.get_path("purelib")}))
"""


@dataclass(frozen=True)
class BundledLibrary:
    """A shared library copied into lib/ from the build machine."""

    soname: str
    source: Path
    """Where the loader found it for the base interpreter (symlinks not resolved)."""
    needed_by: str
    """The first file (relative to the prefix) or library that needs it."""
    size: int


@dataclass(frozen=True)
class PortableInterpreter:
    """A relocatable copy of a base interpreter, as ``make_portable`` left it."""

    prefix: Path
    executable: Path
    """bin/python3.X inside ``prefix``."""
    version: tuple[int, int, int]
    bundled: tuple[BundledLibrary, ...]
    """Third-party libraries (libssl, libffi...); libpython is not among them."""
    libpython: Path | None
    """The copied libpython, or None for an executable that links it statically."""
    system_libraries: tuple[str, ...]
    """What the copy expects from the target: glibc's libraries."""
    glibc_floor: str | None
    """The highest GLIBC_ symbol version any ELF file of the copy needs."""
    floor_file: str | None
    site_packages: Path
    """The (empty) folder the copy installs packages into: its sysconfig purelib."""
    stripped: bool
    sources: tuple[Path, ...] = ()
    """Every file of the installation and the system that the copy was made from."""


def make_portable(
    base: BaseInterpreter,
    dest: Path,
    *,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    headers: bool = True,
    strip: bool = True,
    resolver: LibraryResolver | None = None,
    probe: bool = True,
) -> PortableInterpreter:
    """Write a relocatable copy of ``base`` into ``dest`` (absent or empty); see module doc.

    ``exclude`` globs are relative to lib/python3.X; ``headers`` adds include/, the config
    script and the pkg-config files (needed to build extensions); ``strip`` drops debug info
    where ``strip`` is available. On failure ``dest`` is removed again.

    ``resolver`` finds the libraries (default: as this machine's loader would); with
    ``probe=False`` the copy is never run, so a ``base`` of another architecture, unpacked
    into a folder with a resolver over that folder's library directories, works too: its
    site-packages is then lib/python3.X/site-packages.
    """
    dest = dest.absolute()
    with _rollback(dest):
        copied = copy_interpreter(base, dest, exclude, headers=headers)
        elves = {p: i for p, i in ((p, read_elf(p)) for p in copied) if i is not None}
        resolver = resolver or LibraryResolver.from_environment()
        roots = _roots(base, dest, copied, elves, resolver)
        closure = resolve_closure(roots, resolver, optional=DLOPENED_BY_GLIBC)
        libpython, bundled = _copy_libraries(base, dest, closure, elves, headers=headers)
        stripped = strip and strip_debug(sorted(elves))
        set_rpaths(_rpaths(dest, elves, closure))
        _relocate_text(base, dest)
        python = dest / "bin" / f"python{base.short_version}"
        site_packages = _probe(python, dest) if probe else _site_packages(base, dest)
        facts = scan_elf(dest, [str(p.relative_to(dest)) for p in sorted(elves)])
    return PortableInterpreter(
        prefix=dest,
        executable=dest / "bin" / f"python{base.short_version}",
        version=base.version,
        bundled=bundled,
        libpython=libpython,
        system_libraries=closure.system,
        glibc_floor=facts.glibc_floor,
        floor_file=facts.floor_file,
        site_packages=site_packages,
        stripped=stripped,
        sources=tuple(sorted({*copied.values(), *(s for s, _ in closure.found.values())})),
    )


@contextlib.contextmanager
def _rollback(dest: Path) -> Iterator[None]:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        msg = f"destination for the portable python is not empty: {dest}"
        raise StageError(msg, hint="choose a new folder")
    existed = dest.exists()
    try:
        yield
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        if existed:
            dest.mkdir()
        raise


def _roots(
    base: BaseInterpreter,
    dest: Path,
    copied: dict[Path, Path],
    elves: dict[Path, ElfInfo],
    resolver: LibraryResolver,
) -> list[Needer]:
    """The executable first, then every other file, loaded by libpython (which dlopens them).

    ``$ORIGIN`` means the original's folder: the copy still has the original search paths.
    """
    exe_path = dest / "bin" / f"python{base.short_version}"
    exe = Needer(elves[exe_path], copied[exe_path].parent, f"bin/{exe_path.name}")
    glibc = Needer(replace(exe.info, needed=DLOPENED_BY_GLIBC), exe.origin, "libc.so.6 (dlopen)")
    loaders = [exe]
    for soname in exe.info.needed:
        found = resolver.resolve(soname, exe) if soname.startswith("libpython") else None
        info = read_elf(found) if found is not None else None
        if found is not None and info is not None:
            loaders.insert(0, Needer(info, found.parent, soname, (exe,)))
    others = [
        Needer(info, copied[path].parent, str(path.relative_to(dest)), tuple(loaders))
        for path, info in sorted(elves.items())
        if info.dynamic and path != exe_path
    ]
    return [exe, *others, glibc]


def _copy_libraries(
    base: BaseInterpreter,
    dest: Path,
    closure: Closure,
    elves: dict[Path, ElfInfo],
    *,
    headers: bool,
) -> tuple[Path | None, tuple[BundledLibrary, ...]]:
    """Copy the closure into lib/ under each library's soname; libpython is the base's own."""
    lib = dest / "lib"
    lib.mkdir(exist_ok=True)
    libpython: Path | None = None
    bundled: list[BundledLibrary] = []
    for soname, (source, needed_by) in sorted(closure.found.items()):
        target = lib / soname
        if not target.exists():
            shutil.copyfile(source, target)
            target.chmod(0o755)
        info = read_elf(target)
        if info is not None:
            elves[target] = info
        if soname.startswith("libpython3"):
            libpython = libpython or target
            continue
        bundled.append(BundledLibrary(soname, source, needed_by, target.stat().st_size))
    link = lib / (base.ldlibrary or "")
    if headers and libpython is not None and link.suffix == ".so" and not link.exists():
        link.symlink_to(libpython.name)  # what `cc -lpython3.X` links against
    return libpython, tuple(bundled)


def _rpaths(dest: Path, elves: dict[Path, ElfInfo], closure: Closure) -> dict[Path, str]:
    """Every linked file that had a search path or needs a copied library gets one into lib/."""
    return {
        path: origin_rpath(path, dest / "lib")
        for path, info in elves.items()
        if info.dynamic
        and (info.rpath or info.runpath or any(n in closure.found for n in info.needed))
    }


def _relocate_text(base: BaseInterpreter, dest: Path) -> None:
    """Rewrite the files that name the build prefix (their copied .pyc files are stale now:
    the seal stage compiles the bytecode of the whole environment again)."""
    for stdlib in dict.fromkeys((base.stdlib, base.platstdlib)):
        folder = dest / stdlib.relative_to(base.prefix)
        for path in sorted(folder.glob("_sysconfigdata_*.py")):
            if not path.is_symlink():
                relocate_sysconfigdata(path, base.build_prefix)
    for script in (dest / "bin").glob("python*-config"):
        if not script.is_symlink():
            relocate_config_script(script, base.build_prefix)
    for pc in (dest / "lib" / "pkgconfig").glob("*.pc"):
        relocate_pkgconfig(pc, base.build_prefix)


def _probe(python: Path, dest: Path) -> Path:
    """Run the copy: it must find itself as its prefix.

    Returns its site-packages (created empty): Debian's python installs into
    local/lib/python3.X/dist-packages, a python.org build into lib/python3.X/site-packages.
    """
    argv = [str(python), "-I", "-c", _PROBE]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        msg = f"the portable python does not run: {tail}"
        raise StageError(msg, hint="a library may be missing from lib/; please report this")
    reported = json.loads(proc.stdout.strip().splitlines()[-1])
    if Path(reported["prefix"]).resolve() != dest.resolve():
        msg = f"the portable python finds another prefix: {reported['prefix']} (not {dest})"
        raise StageError(msg, hint="this installation layout is not supported")
    site_packages = Path(reported["purelib"])
    site_packages.mkdir(parents=True, exist_ok=True)
    return site_packages


def _site_packages(base: BaseInterpreter, dest: Path) -> Path:
    """python.org's purelib, created empty (the copy was not run to ask it)."""
    site_packages = dest / "lib" / f"python{base.short_version}" / "site-packages"
    site_packages.mkdir(parents=True, exist_ok=True)
    return site_packages


def stage_portable_python(base: BaseInterpreter, dest: Path, subdir: Subdir) -> StagedPrefix:
    """A portable copy of `base` as a staging prefix that wheels can be installed into.

    The copy holds no path of its own (everything is $ORIGIN- or sys.prefix-relative); the
    placeholder only goes into what installer writes (console scripts), for seal to find.
    """
    portable = make_portable(base, dest)
    python = f"bin/python{portable.version[0]}.{portable.version[1]}"
    bundled = tuple(
        HostLibrary(b.soname, f"lib/{b.soname}", str(b.source), (b.needed_by,), b.size)
        for b in portable.bundled
    )
    return StagedPrefix(
        dest,
        make_placeholder(DEFAULT_PREFIX_MAX),
        subdir,
        python,
        str(portable.site_packages.relative_to(dest)),
        bundled,
        tuple(str(p) for p in portable.sources),
    )

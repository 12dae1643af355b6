"""Which shared libraries an interpreter tree loads, found with the dynamic loader's own rules."""

from __future__ import annotations

import fnmatch
import functools
import os
import platform
import re
import shutil
import subprocess
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection
from elftools.elf.segments import InterpSegment

from portenv.errors import StageError
from portenv.platforms import debian_triplet

__all__ = [
    "SYSTEM_LIBRARIES",
    "Closure",
    "ElfInfo",
    "LibraryResolver",
    "Needer",
    "is_glibc_part",
    "is_system_library",
    "read_elf",
    "resolve_closure",
]

SYSTEM_LIBRARIES = frozenset(
    {
        # The manylinux policy's glibc part: every target has these.
        "libc.so.6",
        "libm.so.6",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "libutil.so.1",
        # Also glibc's own: they call GLIBC_PRIVATE symbols of libc.so.6, so a copy from the
        # build machine cannot work with the target's libc (krb5 needs libresolv).
        "libresolv.so.2",
        "libanl.so.1",
        "libmvec.so.1",
        "libnsl.so.1",
        "libBrokenLocale.so.1",
        "libthread_db.so.1",
        "libc_malloc_debug.so.0",
    }
)
"""Libraries expected from the target. Everything else (libcrypt.so.1, libgcc_s, libstdc++,
libssl...) is bundled: a bare glibc + busybox system has none of them."""
_SYSTEM_PATTERNS = ("ld-linux*.so.*", "ld64.so.*", "ld.so.*", "libnss_*.so.*")


def is_system_library(soname: str) -> bool:
    """True for the glibc libraries the target provides (``libc.so.6``, ``ld-linux-*.so.*``).

    >>> is_system_library("libm.so.6"), is_system_library("libcrypt.so.1")
    (True, False)
    """
    return soname in SYSTEM_LIBRARIES or any(fnmatch.fnmatch(soname, p) for p in _SYSTEM_PATTERNS)


@dataclass(frozen=True)
class ElfInfo:
    """What the loader reads from one ELF file: its program headers and dynamic segment."""

    path: Path
    kind: str
    """``ET_EXEC``, ``ET_DYN`` or ``ET_REL``."""
    elf_class: int
    machine: str
    interpreter: str | None
    needed: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    dynamic: bool = False
    """Has a dynamic segment: an executable or library the loader links (not an object file)."""


def read_elf(path: Path) -> ElfInfo | None:
    """The loader-relevant facts of ``path``, or None if it is not an ELF file.

    Only the program headers are read (a few per file), never the section table: a build
    with debug info has a hundred sections, and parsing them made this the slowest step.
    """
    try:
        with path.open("rb") as stream:
            if stream.read(4) != b"\x7fELF":
                return None
            stream.seek(0)
            return _read(ELFFile(stream), path)
    except (ELFError, OSError):
        return None


def _read(elf: ELFFile, path: Path) -> ElfInfo:
    found: dict[str, list[str]] = {"DT_NEEDED": [], "DT_RPATH": [], "DT_RUNPATH": []}
    interp: str | None = None
    dynamic = False
    for segment in elf.iter_segments():
        if isinstance(segment, InterpSegment):
            interp = segment.get_interp_name()
        elif isinstance(segment, DynamicSegment):
            dynamic = True
            for tag in segment.iter_tags():
                kind = tag.entry.d_tag
                if kind in found:
                    text = str(vars(tag).get(kind[3:].lower(), ""))  # DynamicTag's string
                    found[kind] += (
                        [text] if kind == "DT_NEEDED" else [p for p in text.split(":") if p]
                    )
    kind = str(elf["e_type"])
    return ElfInfo(
        path=path,
        kind=kind,
        elf_class=int(elf.elfclass),
        machine=str(elf["e_machine"]),
        interpreter=interp,
        needed=tuple(found["DT_NEEDED"]),
        rpath=tuple(found["DT_RPATH"]),
        runpath=tuple(found["DT_RUNPATH"]),
        dynamic=dynamic and kind in ("ET_EXEC", "ET_DYN"),
    )


def is_glibc_part(path: Path) -> bool:
    """True if ``path`` needs GLIBC_PRIVATE symbols: it belongs to glibc and cannot be copied."""
    try:
        with path.open("rb") as stream:
            return any(
                aux.name == "GLIBC_PRIVATE"
                for section in ELFFile(stream).iter_sections()
                if isinstance(section, GNUVerNeedSection)
                for _verneed, auxiliaries in section.iter_versions()
                for aux in auxiliaries
            )
    except (ELFError, OSError):
        return False


@dataclass(frozen=True)
class Needer:
    """An object whose DT_NEEDED entries are resolved; ``origin`` is what ``$ORIGIN`` means.

    ``loaders`` are the objects that caused it to be loaded, innermost first, the executable
    last: the loader searches their DT_RPATH too (unless the needer has a DT_RUNPATH).
    """

    info: ElfInfo
    origin: Path
    label: str
    loaders: tuple[Needer, ...] = ()


@functools.cache
def _ld_cache() -> tuple[tuple[str, Path], ...]:
    """(soname, path) pairs of /etc/ld.so.cache, in the cache's order (``ldconfig -p``)."""
    ldconfig = shutil.which("ldconfig") or next(
        (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.access(p, os.X_OK)), None
    )
    if ldconfig is None:
        return ()
    proc = subprocess.run(
        [ldconfig, "-p"], capture_output=True, text=True, check=False, env={"LC_ALL": "C"}
    )
    found = re.findall(r"^\s+(\S+) \(([^)]*)\) => (\S+)$", proc.stdout, re.M)
    return tuple((soname, Path(path)) for soname, _flags, path in found)


def default_dirs() -> tuple[Path, ...]:
    """The loader's built-in directories (Debian multiarch first, then lib64, then lib)."""
    triplet = debian_triplet(platform.machine())
    names = (f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib64", "/usr/lib64", "/lib", "/usr/lib")
    return tuple(Path(n) for n in names)


@dataclass
class LibraryResolver:
    """Find the file a DT_NEEDED name loads, in the order glibc's ld.so searches.

    DT_RPATH of the needer and of its loaders up to the executable (skipped if the needer
    has a DT_RUNPATH), LD_LIBRARY_PATH, the needer's DT_RUNPATH, /etc/ld.so.cache, then the
    default directories. A candidate of another ELF class or machine is skipped, as ld.so does.
    """

    env_dirs: tuple[str, ...] = ()
    cache: Sequence[tuple[str, Path]] = field(default_factory=_ld_cache)
    defaults: Sequence[Path] = field(default_factory=default_dirs)
    within: Path | None = None
    """Accept only files inside this folder: an environment's own search path, never the host's."""
    _facts: dict[Path, ElfInfo | None] = field(default_factory=dict, repr=False)

    @classmethod
    def inside(cls, root: Path) -> LibraryResolver:
        """A resolver that finds only what ``root`` holds, through DT_RPATH/DT_RUNPATH alone.

        Nothing of the build machine counts (no LD_LIBRARY_PATH, ld.so.cache or default
        directories): what it finds, the loader finds wherever ``root`` is unpacked.
        """
        return cls(cache=(), defaults=(), within=root)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> LibraryResolver:
        """A resolver that honours LD_LIBRARY_PATH like the base interpreter's loader does."""
        value = (os.environ if environ is None else environ).get("LD_LIBRARY_PATH", "")
        return cls(env_dirs=tuple(d for d in value.replace(";", ":").split(":") if d))

    def resolve(self, soname: str, needer: Needer) -> Path | None:
        """The path ``soname`` loads from when ``needer`` asks for it, or None if not found."""
        if "/" in soname:
            return self._accept(Path(soname), needer.info)
        for directory in self._search_dirs(needer):
            found = self._accept(directory / soname, needer.info)
            if found is not None:
                return found
        for name, path in self.cache:
            if name == soname and self._accept(path, needer.info) is not None:
                return path
        for directory in self.defaults:
            found = self._accept(directory / soname, needer.info)
            if found is not None:
                return found
        return None

    def _search_dirs(self, needer: Needer) -> Iterable[Path]:
        if not needer.info.runpath:
            for obj in (needer, *needer.loaders):
                yield from _expand(obj.info.rpath, obj.origin)
        yield from (Path(d) for d in self.env_dirs)
        yield from _expand(needer.info.runpath, needer.origin)

    def _accept(self, path: Path, wanted: ElfInfo) -> Path | None:
        if self.within is not None:
            path = Path(os.path.normpath(path))
            if self.within not in path.parents:
                return None
        if path not in self._facts:
            self._facts[path] = read_elf(path) if path.is_file() else None
        info = self._facts[path]
        if info is None or (info.elf_class, info.machine) != (wanted.elf_class, wanted.machine):
            return None
        return path


def _expand(entries: Sequence[str], origin: Path) -> Iterable[Path]:
    for entry in entries:
        text = entry.replace("${ORIGIN}", "$ORIGIN").replace("$ORIGIN", str(origin))
        if "$" not in text:  # $LIB / $PLATFORM: not used by CPython builds
            yield Path(text)


@dataclass(frozen=True)
class Closure:
    """Every library the tree loads: ``soname -> (host path, first needer)``."""

    found: dict[str, tuple[Path, str]]
    system: tuple[str, ...]
    """Sonames left to the target (glibc)."""


def resolve_closure(
    roots: Sequence[Needer], resolver: LibraryResolver, optional: Iterable[str] = ()
) -> Closure:
    """Walk DT_NEEDED from ``roots`` breadth first; raise StageError listing what is missing.

    A library is walked once, with the loaders of its first needer (the executable's
    dependencies come first, so that is also the order ld.so loads them in). Sonames in
    ``optional`` are bundled when found and skipped silently when not.
    """
    optional = frozenset(optional)
    found: dict[str, tuple[Path, str]] = {}
    system: set[str] = set()
    missing: list[str] = []
    queue = deque(roots)
    while queue:
        needer = queue.popleft()
        for soname in needer.info.needed:
            if soname in found or soname in system:
                continue
            if is_system_library(soname):
                system.add(soname)
                continue
            path = resolver.resolve(soname, needer)
            info = read_elf(path) if path is not None else None
            if (path is None or info is None) and soname in optional:
                continue
            if path is None or info is None:
                missing.append(f"{soname} (needed by {needer.label})")
                continue
            if is_glibc_part(path):
                system.add(soname)
                continue
            found[soname] = (path, needer.label)
            loaders = (needer, *needer.loaders)
            queue.append(Needer(info, path.parent, soname, loaders))
    if missing:
        msg = f"shared libraries not found: {', '.join(sorted(set(missing)))}"
        hint = "install them, or leave out the modules that need them with exclude"
        raise StageError(msg, hint=hint)
    return Closure(found, tuple(sorted(system)))

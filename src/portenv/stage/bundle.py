"""Everything beyond glibc is in the environment: bundle the shared libraries the target lacks.

After staging and installing the wheels, every DT_NEEDED of every ELF file must resolve inside
the environment, through the file's own search path or the loader rules that apply to it (the
DT_RPATH of its loading chain, which ends at the python executable's ``$ORIGIN/../lib``, for
objects without DT_RUNPATH), or be glibc's. What does not is copied from the build machine
into the environment's ``lib/``, as auditwheel repairs a wheel, and each file that cannot reach
it gets an ``$ORIGIN``-relative search path entry to it. ``lib/`` because both a conda python
and the portable CPython search it from the executable, and so does glibc when it dlopens
libgcc_s.so.1. Absolute search paths become ``$ORIGIN``-relative where they point into the
environment and are dropped elsewhere.
"""

from __future__ import annotations

import fnmatch
import json
import mmap
import os
import shutil
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from portenv.elf import machine_name
from portenv.errors import StageError
from portenv.model import HostLibrary, StagedPrefix
from portenv.platforms import arch_of
from portenv.stage.cpython import DLOPENED_BY_GLIBC
from portenv.stage.cpython_closure import (
    ElfInfo,
    LibraryResolver,
    Needer,
    is_glibc_part,
    is_system_library,
    read_elf,
)
from portenv.stage.cpython_patch import origin_rpath, rewrite_search_paths

__all__ = ["TARGET_DRIVERS", "Bundle", "LeftToTarget", "complete_closure", "search_path"]

TARGET_DRIVERS = (
    "libcuda.so*",
    "libnvidia-*.so*",
    "libnvcuvid.so*",
    "libGL.so*",
    "libGLX.so*",
    "libGLX_*.so*",
    "libGLdispatch.so*",
    "libOpenGL.so*",
    "libEGL.so*",
    "libGLESv1_CM.so*",
    "libGLESv2.so*",
    "libOpenCL.so*",
)
"""Never bundled: they talk to the target's kernel driver and must be the target's own build."""
BUNDLED_JSON = ".portenv/bundled.json"
_GLIBC_DLOPEN = "libc.so.6 (dlopen)"
"""The label of glibc itself as a needer: it dlopens DLOPENED_BY_GLIBC for the files below."""
_UNWINDS = (b"pthread_cancel\0", b"pthread_exit\0")
"""Names in a file's dynamic strings that make glibc dlopen libgcc_s.so.1 (DLOPENED_BY_GLIBC)."""


@dataclass(frozen=True)
class LeftToTarget:
    """A needed library that is not bundled: the target must have it."""

    name: str
    needed_by: tuple[str, ...]
    reason: str
    """``driver`` (TARGET_DRIVERS) or ``allowed`` (--allow-missing-library)."""


@dataclass(frozen=True)
class Bundle:
    """What complete_closure did: libraries copied in, libraries left, files patched."""

    bundled: tuple[HostLibrary, ...]
    left_to_target: tuple[LeftToTarget, ...]
    patched: tuple[str, ...]


@dataclass
class _Node:
    """One ELF file of the environment: its search path as it will be, and as it was built."""

    path: Path
    runpath: bool
    """It has a DT_RUNPATH (kept as such); else its entries are a DT_RPATH."""
    entries: list[str]
    original: tuple[str, ...]
    host: Needer
    """How the build machine resolves its needs: the file as built, from where it was built."""


@dataclass
class _Walk:
    """The state of one closure: the files, what is unresolved, what was copied in."""

    root: Path
    nodes: dict[Path, _Node] = field(default_factory=dict)
    seen: set[Path] = field(default_factory=set)
    unresolved: dict[str, set[Path]] = field(default_factory=dict)
    bundled: dict[str, HostLibrary] = field(default_factory=dict)
    left: dict[str, LeftToTarget] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    names: dict[Path, set[str]] | None = None
    """Each ELF file's names (its own and its symlinks'), read when first needed."""

    def label(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def final(self, path: Path) -> ElfInfo:
        """The file's ELF facts with the search path it will have."""
        node = self.nodes[path]
        kept = tuple(node.entries)
        return replace(
            node.host.info,
            path=path,
            rpath=() if node.runpath else kept,
            runpath=kept if node.runpath else (),
        )

    def needer(self, path: Path, loaders: tuple[Needer, ...] = ()) -> Needer:
        """The file as the target's loader sees it, loaded through ``loaders``."""
        return Needer(self.final(path), path.parent, self.label(path), loaders)


def search_path(entries: Sequence[str], file: Path, root: Path, placeholder: str) -> list[str]:
    """``entries`` as the target needs them: into the environment ``$ORIGIN``-relative, else gone.

    >>> search_path(["/e/lib", "/usr/lib", "$ORIGIN"], Path("/e/bin/x"), Path("/e"), "/p")
    ['$ORIGIN/../lib', '$ORIGIN']
    """
    kept: list[str] = []
    for entry in entries:
        if entry == placeholder or entry.startswith(placeholder + "/"):
            entry = origin_rpath(file, root / entry[len(placeholder) :].lstrip("/"))
        elif entry.startswith("/"):
            inside = Path(os.path.realpath(entry))
            if inside != root and root not in inside.parents:
                continue
            entry = origin_rpath(file, inside)
        if entry not in kept:
            kept.append(entry)
    return kept


def _elf_files(root: Path, arch: str) -> dict[Path, ElfInfo]:
    """Every linked ELF file of the target's machine (others are seal's to refuse)."""
    found: dict[Path, ElfInfo] = {}
    for here, _dirs, files in os.walk(root):
        for name in files:
            path = Path(here, name)
            info = None if path.is_symlink() else read_elf(path)
            if info is not None and info.dynamic and machine_name(info.machine) == arch:
                found[path] = info
    return found


def _aliases(root: Path, files: Iterable[Path]) -> dict[Path, set[str]]:
    """Each file's names: its own and those of the symlinks to it (libz.so.1 -> libz.so.1.3)."""
    names = {path: {path.name} for path in files}
    for here, _dirs, entries in os.walk(root):
        for name in entries:
            link = Path(here, name)
            if link.is_symlink():
                target = link.resolve()
                if target in names:
                    names[target].add(name)
    return names


def _unwinds(path: Path) -> bool:
    """True if the file calls pthread_cancel or pthread_exit (cheap: its dynamic strings)."""
    if path.stat().st_size == 0:
        return False
    with path.open("rb") as stream, mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return any(data.find(name) != -1 for name in _UNWINDS)


def _left_reason(soname: str, allowed: Sequence[str]) -> str | None:
    if any(fnmatch.fnmatchcase(soname, pattern) for pattern in allowed):
        return "allowed"
    if any(fnmatch.fnmatchcase(soname, pattern) for pattern in TARGET_DRIVERS):
        return "driver"
    return None


def _visit(walk: _Walk, first: Needer, resolver: LibraryResolver) -> None:
    """Resolve the needs of ``first`` and of what it loads, inside the environment."""
    queue = deque([first])
    while queue:
        needer = queue.popleft()
        for soname in needer.info.needed:
            if is_system_library(soname):
                continue
            found = resolver.resolve(soname, needer)
            if found is None:
                walk.unresolved.setdefault(soname, set()).add(needer.info.path)
                continue
            real = found.resolve()
            if real in walk.nodes and real not in walk.seen:
                walk.seen.add(real)
                queue.append(
                    replace(walk.needer(real, (needer, *needer.loaders)), origin=found.parent)
                )


def _roots(walk: _Walk, exe: Needer) -> list[Needer]:
    """The executables, then every library nothing in the environment names (python loads
    them: extension modules), with the python executable as their loader."""
    needed = {soname for node in walk.nodes.values() for soname in node.host.info.needed}
    names = _aliases(walk.root, walk.nodes)
    programs = [walk.needer(p) for p in sorted(walk.nodes) if walk.nodes[p].host.info.interpreter]
    modules = [
        walk.needer(p, (exe,))
        for p in sorted(walk.nodes)
        if not walk.nodes[p].host.info.interpreter and not names[p] & needed
    ]
    return [exe, *programs, *modules]


def complete_closure(
    staged: StagedPrefix, *, allow_missing: Sequence[str] = (), from_host: bool = True
) -> Bundle:
    """Make every ELF file of ``staged`` find its libraries inside it; see the module doc.

    ``allow_missing`` (sonames or globs) and TARGET_DRIVERS are left to the target.
    ``from_host=False`` (packing for another machine) takes nothing from this machine: what
    the environment lacks is refused. Raises StageError naming every missing library.
    """
    root = staged.path.resolve()
    walk = _Walk(root)
    for path, info in _elf_files(root, arch_of(staged.subdir)).items():
        original = info.runpath or info.rpath
        entries = search_path(original, path, root, staged.placeholder)
        built = Needer(info, path.parent, walk.label(path))
        walk.nodes[path] = _Node(path, bool(info.runpath), entries, original, built)
    python = (root / staged.python).resolve()
    if python not in walk.nodes:
        msg = f"the environment's interpreter {staged.python} is not a linked ELF executable"
        raise StageError(msg, hint="check the python package of the environment")
    exe = walk.needer(python)
    host = LibraryResolver.from_environment() if from_host else None
    pending = _roots(walk, exe)
    if any(_unwinds(p) for p in walk.nodes):  # glibc dlopens libgcc_s.so.1 for them
        glibc = Needer(replace(exe.info, needed=DLOPENED_BY_GLIBC), exe.origin, _GLIBC_DLOPEN)
        pending.append(glibc)
    while pending:
        resolver = LibraryResolver.inside(root)
        for needer in pending:
            if needer.label == _GLIBC_DLOPEN or needer.info.path not in walk.seen:
                walk.seen.add(needer.info.path)
                _visit(walk, needer, resolver)
        for path in sorted(set(walk.nodes) - walk.seen):  # named, but by nothing reached
            walk.seen.add(path)
            _visit(walk, walk.needer(path, (exe,)), resolver)
        pending = _repair(walk, exe, host, allow_missing)
    _refuse_missing(walk, from_host)
    return _finish(walk, staged)


def _repair(
    walk: _Walk, exe: Needer, host: LibraryResolver | None, allowed: Sequence[str]
) -> list[Needer]:
    """Bring each unresolved library into lib/ (or leave it to the target); return the copies.

    A file that then still cannot find it (a DT_RUNPATH, or a program: no chain through
    python) gets a search path entry to lib/.
    """
    added: list[Needer] = []
    lib = walk.root / "lib"
    unresolved, walk.unresolved = walk.unresolved, {}
    resolver = LibraryResolver.inside(walk.root)
    for soname, needers in sorted(unresolved.items()):
        labels = {walk.label(p) for p in needers}
        reason = _left_reason(soname, allowed)
        held = None if (lib / soname).exists() else _held_elsewhere(walk, soname)
        if reason is not None:
            old = walk.left[soname].needed_by if soname in walk.left else ()
            walk.left[soname] = LeftToTarget(soname, tuple(sorted({*labels, *old})), reason)
            unresolved[soname] = set()
        elif held is not None:  # another folder of the env holds it (torch/lib/libc10.so)
            _point_at(walk, held, soname, needers, (exe, resolver))
        elif not (lib / soname).exists():
            copied = _copy_in(walk, soname, needers, host)
            if copied is None:
                unresolved[soname] = set()
                continue
            added.append(copied)
        if soname in walk.bundled:
            record = walk.bundled[soname]
            needed_by = tuple(sorted({*record.needed_by, *labels}))
            walk.bundled[soname] = replace(record, needed_by=needed_by)
    for soname, needers in unresolved.items():
        _reach_lib(walk, soname, needers, (exe, resolver))
    return added


def _reach_lib(
    walk: _Walk, soname: str, needers: set[Path], how: tuple[Needer, LibraryResolver]
) -> None:
    """Give each needer that cannot reach lib/``soname`` an entry to lib/; else it is missing."""
    lib = walk.root / "lib"
    for path in sorted(needers):
        if not _reaches(walk, path, soname, *how):
            walk.nodes[path].entries.append(origin_rpath(path, lib))
            if not _reaches(walk, path, soname, *how):
                walk.missing.append(
                    f"{soname} (needed by {walk.label(path)}; lib/{soname} does not fit)"
                )


def _point_at(
    walk: _Walk, held: Path, soname: str, needers: set[Path], how: tuple[Needer, LibraryResolver]
) -> None:
    """Give each needer that cannot reach ``held`` an ``$ORIGIN``-relative entry to its folder."""
    for path in sorted(needers):
        if not _reaches(walk, path, soname, *how):
            walk.nodes[path].entries.append(origin_rpath(path, held.parent))


def _held_elsewhere(walk: _Walk, soname: str) -> Path | None:
    """The environment's own library of that name outside lib/, if there is one: a file a
    package ships beside its others, which a program of that package names without a search
    path that reaches it (torch's test programs in torch/bin/ and libc10.so in torch/lib/)."""
    if walk.names is None:
        walk.names = _aliases(walk.root, walk.nodes)
    held = sorted(path for path, names in walk.names.items() if soname in names)
    return held[0] if held else None


def _reaches(walk: _Walk, path: Path, soname: str, exe: Needer, resolver: LibraryResolver) -> bool:
    """True if the file finds ``soname`` in the environment (loaded by python, if a library)."""
    info = walk.final(path)
    loaders = (exe,) if not info.interpreter else ()
    return resolver.resolve(soname, Needer(info, path.parent, "", loaders)) is not None


def _copy_in(
    walk: _Walk, soname: str, needers: set[Path], host: LibraryResolver | None
) -> Needer | None:
    """Copy ``soname`` from the build machine into lib/; None when it is glibc's or absent."""
    source = None
    for path in sorted(needers):
        source = host.resolve(soname, walk.nodes[path].host) if host is not None else None
        if source is not None:
            break
    if source is not None and is_glibc_part(source):
        return None
    if source is None:
        if soname not in DLOPENED_BY_GLIBC:
            walk.missing += [f"{soname} (needed by {walk.label(p)})" for p in sorted(needers)]
        return None
    target = walk.root / "lib" / soname
    target.parent.mkdir(exist_ok=True)
    if target.is_symlink():  # a dangling link: never write through it
        target.unlink()
    shutil.copyfile(source, target)
    target.chmod(0o755)
    info = read_elf(source)
    assert info is not None  # the resolver accepts ELF files only
    asker = walk.nodes[sorted(needers)[0]].host
    host_needer = Needer(info, source.parent, soname, (asker, *asker.loaders))
    walk.nodes[target] = _Node(target, False, ["$ORIGIN"], ("",), host_needer)
    walk.bundled[soname] = HostLibrary(
        soname, walk.label(target), str(source), (), target.stat().st_size
    )
    return walk.needer(target)


def _refuse_missing(walk: _Walk, from_host: bool) -> None:
    missing = sorted(set(walk.missing))
    if not missing:
        return
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    first = missing[0].split(" ", 1)[0]
    if from_host:
        msg = f"shared libraries found neither in the environment nor on this machine: {shown}"
        hint = (
            "install them here (their distribution package), or, if the target has them, "
            f"pass --allow-missing-library {first}"
        )
    else:
        msg = f"shared libraries the environment does not hold: {shown}"
        hint = (
            "packing for another machine takes libraries only from the environment: add the "
            f"package that provides them, or pass --allow-missing-library {first}"
        )
    raise StageError(msg, hint=hint)


def _finish(walk: _Walk, staged: StagedPrefix) -> Bundle:
    """Write the new search paths and `.portenv/bundled.json`."""
    changes = {
        path: ":".join(node.entries)
        for path, node in walk.nodes.items()
        if tuple(node.entries) != node.original
    }
    rewrite_search_paths(changes, runpath={p for p in changes if walk.nodes[p].runpath})
    bundle = Bundle(
        tuple(sorted((*staged.bundled, *walk.bundled.values()), key=lambda b: b.name)),
        tuple(sorted(walk.left.values(), key=lambda left: left.name)),
        tuple(sorted(walk.label(p) for p in changes)),
    )
    record = {
        "format": 1,
        "bundled": [b.to_json() for b in bundle.bundled],
        "left_to_target": [
            {"name": left.name, "needed_by": list(left.needed_by), "reason": left.reason}
            for left in bundle.left_to_target
        ],
    }
    out = walk.root / BUNDLED_JSON
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    out.chmod(0o644)
    return bundle

"""Turn what a reader found (files, records, archive facts) into the Report every output shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from portenv.elf import ElfFacts
from portenv.inspect._libraries import read_libraries
from portenv.inspect._model import ArchiveFacts, FileRow, Glibc, InputKind, Package, Report
from portenv.inspect._owners import GROUP_NAMES, OTHER, attribute, package_key, record_entries
from portenv.inspect._scan import Scan
from portenv.inspect._tree import size_map

__all__ = ["FLOOR_FILES", "LARGEST", "Found", "build_report"]

LARGEST = 10
"""How many of the largest files a report lists."""
FLOOR_FILES = 5
"""How many of the files that need the newest glibc a report lists."""


@dataclass(frozen=True)
class Found:
    """What a reader of one kind of input gathered."""

    path: str
    kind: InputKind
    scan: Scan
    inventory: Sequence[Mapping[str, object]] = ()
    """The input's own package list (`.portenv/packages.json`, a pixi-pack's records)."""
    archive: ArchiveFacts | None = None
    platform: str | None = None
    python: str | None = None
    recorded_floor: str | None = None


def _entries(found: Found) -> list[Mapping[str, object]]:
    """The input's inventory, plus what the environment's own records add (a conda prefix has
    only those; a package installed into an unpacked env after the fact shows up too)."""
    entries = list(found.inventory)
    known = {package_key(e) for e in entries}
    entries += [e for e in record_entries(found.scan.records) if package_key(e) not in known]
    return entries


def _text(entry: Mapping[str, object], key: str) -> str | None:
    value = entry.get(key)
    return str(value) if value not in (None, "") else None


def _figure(entry: Mapping[str, object], key: str) -> int | None:
    value = entry.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _package(entry: Mapping[str, object], measured: Mapping[str, tuple[int, int]]) -> Package:
    key = package_key(entry)
    size, files = measured.get(key, (None, None))
    if not files:
        size, files = _figure(entry, "installed_size"), _figure(entry, "installed_files")
    return Package(
        key=key,
        kind=str(entry.get("kind", "")),
        name=str(entry.get("name", "")),
        version=_text(entry, "version"),
        build=_text(entry, "build"),
        source=_text(entry, "source"),
        channel=_text(entry, "channel"),
        license=_text(entry, "license"),
        size=size,
        files=files,
    )


def _glibc(scan: Scan, recorded: str | None) -> Glibc:
    files = tuple(ElfFacts(None, None, {}, scan.glibc).floor_files(FLOOR_FILES))
    return Glibc(files[0][0] if files else None, recorded, files)


def build_report(found: Found) -> Report:
    """The report of one input: packages measured from their files, largest first."""
    scan = found.scan
    entries = _entries(found)
    libraries = tuple(  # their size in this environment (a copy's search path was patched)
        replace(lib, size=scan.sizes.get(lib.path or "", lib.size))
        for lib in read_libraries(scan.records, entries)
    )
    keys = {package_key(e) for e in entries}
    rest = "cpython:python" if "cpython:python" in keys else OTHER
    bundled = [lib.path for lib in libraries if lib.bundled and lib.path]
    owners = attribute(scan.sizes, scan.records, libraries=bundled, rest=rest)
    owners.update(scan.owners)
    measured: dict[str, tuple[int, int]] = {}
    for path, size in scan.sizes.items():
        total, count = measured.get(owners[path], (0, 0))
        measured[owners[path]] = (total + size, count + 1)
    packages = sorted(
        (_package(e, measured) for e in entries if e.get("kind") != "library"),
        key=lambda p: (-(p.size or 0), p.name),
    )
    names = {key: (GROUP_NAMES.get(key, key.split(":", 1)[-1]), "group") for key in measured}
    names |= {p.key: (p.name, "package") for p in packages}
    largest = sorted(scan.sizes.items(), key=lambda item: (-item[1], item[0]))[:LARGEST]
    return Report(
        path=found.path,
        kind=found.kind,
        platform=found.platform,
        python=found.python,
        archive=found.archive,
        glibc=_glibc(scan, found.recorded_floor),
        size=sum(scan.sizes.values()),
        files=len(scan.sizes),
        links=scan.links,
        packages=tuple(packages),
        largest=tuple(FileRow(path, size, owners[path]) for path, size in largest),
        libraries=libraries,
        tree=size_map(scan.sizes, owners, names),
        inventory=tuple(entries),
    )

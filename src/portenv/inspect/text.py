"""``portenv inspect``'s default output: the Report as a summary a person reads in a terminal."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from portenv.inspect._model import Library, Package, Report
from portenv.inspect._owners import GROUP_NAMES

__all__ = ["human_size", "render_text"]

_KINDS = {"portenv": "portenv archive", "pixi-pack": "pixi-pack archive", "env": "environment"}


def human_size(size: int | None) -> str:
    """Bytes in binary units with one decimal (``1.5 MiB``), as `du -h` and the unpacker count."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # the loop returns at GiB


def _facts(report: Report) -> Iterator[str]:
    archive = report.archive
    shape = f" ({archive.shape})" if archive is not None else ""
    size = f", {human_size(archive.size)}" if archive is not None and archive.size else ""
    yield f"{report.path}: {_KINDS[report.kind]}{shape}{size}"
    rows: list[tuple[str, str | None]] = []
    if archive is not None:
        made = archive.made_by
        if made and archive.format:
            made += f" (format {archive.format})"
        rows += [
            ("sha256", archive.sha256),
            ("made by", made),
            ("compression", archive.compression),
        ]
    arch = archive.meta.get("arch") if archive is not None else None
    platform = f"{report.platform} ({arch})" if report.platform and arch else report.platform
    rows += [("platform", platform), ("python", report.python)]
    rows.append(("contents", f"{human_size(report.size)} in {report.files} files"))
    yield from (f"  {label:<12} {value}" for label, value in rows if value)


def _glibc(report: Report) -> Iterator[str]:
    glibc = report.glibc
    recorded = f" (the archive records {glibc.recorded})" if glibc.recorded else ""
    if glibc.floor is None:
        yield f"glibc: no ELF file needs a versioned glibc symbol{recorded}"
        return
    yield f"glibc >= {glibc.floor}{recorded}; the files that need the newest:"
    yield from (f"  {version:<6} {path}" for version, path in glibc.files)


def _package_row(package: Package) -> str:
    files = str(package.files) if package.files is not None else "?"
    version = package.version or ""
    return (
        f"  {human_size(package.size):>10} {files:>6}  {package.kind:<7} {package.name:<24} "
        f"{version:<16} {package.source or '':<8} {package.license or ''}"
    ).rstrip()


def _packages(report: Report) -> Iterator[str]:
    yield f"{len(report.packages)} packages, largest first:"
    yield f"  {'SIZE':>10} {'FILES':>6}  {'KIND':<7} {'NAME':<24} {'VERSION':<16} SOURCE   LICENSE"
    yield from (_package_row(p) for p in report.packages)
    for node in report.tree.children:
        if node.kind == "group":
            yield f"  {human_size(node.size):>10} {node.files:>6}  ({node.name})"


def _largest(report: Report) -> Iterator[str]:
    names = {p.key: p.name for p in report.packages} | GROUP_NAMES
    yield f"{len(report.largest)} largest files:"
    for row in report.largest:
        owner = f"  ({names.get(row.owner or '', row.owner)})" if row.owner else ""
        yield f"  {human_size(row.size):>10}  {row.path}{owner}"


def _libraries(libraries: Sequence[Library]) -> Iterator[str]:
    bundled = [lib for lib in libraries if lib.bundled]
    left = [lib for lib in libraries if not lib.bundled]
    if bundled:
        yield f"{len(bundled)} bundled libraries (copied from the build machine):"
        for lib in bundled:
            source = f"  from {lib.source}" if lib.source else ""
            yield f"  {human_size(lib.size):>10}  {lib.path or lib.name}{source}"
    if left:
        yield f"{len(left)} libraries left to the target:"
        for lib in left:
            needed = f", needed by {', '.join(lib.needed_by)}" if lib.needed_by else ""
            yield f"  {lib.name} ({lib.reason or 'not bundled'}){needed}"


def render_text(report: Report) -> str:
    """The summary: facts, glibc floor, packages by size, largest files, bundled libraries."""
    sections = [_facts(report), _glibc(report), _packages(report), _largest(report)]
    if report.libraries:
        sections.append(_libraries(report.libraries))
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"

"""Decide, per PyPI entry of a lock, what packing it takes: install a wheel, build, skip, refuse."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import replace

from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)

from portenv.model import CondaPackage, PypiPackage
from portenv.platforms import SUBDIR_ARCH, platform_tags, wheel_tags

__all__ = [
    "EDITABLE",
    "conflicts",
    "decide",
    "editable_notes",
    "ordered_target_tags",
    "target_tags",
    "wheel_misfit",
]

_BUILT_KINDS = {
    "sdist": "a source distribution",
    "git": "a git dependency",
    "path": "a local source folder",
    "editable": "a local source folder (editable in the source)",
}
EDITABLE = "editable in the source: installed as a normal (non-editable) copy, built now"


def ordered_target_tags(python_version: tuple[int, int], subdir: str) -> list[Tag]:
    """Every wheel tag a CPython of `python_version` on Linux `subdir` can install, best first.

    The glibc version a manylinux wheel needs is not judged here: its ELF files raise the
    archive's glibc floor, which the target checks.
    """
    return wheel_tags(python_version, platform_tags(subdir))


@functools.lru_cache(maxsize=16)
def target_tags(python_version: tuple[int, int], subdir: str) -> frozenset[Tag]:
    """The same tags as a set, for fit checks (made once: a plan checks every wheel)."""
    return frozenset(ordered_target_tags(python_version, subdir))


def wheel_misfit(file_name: str, python_version: tuple[int, int], subdir: str) -> str | None:
    """Why the wheel cannot run on the target, or None when one of its tags fits."""
    try:
        _name, _version, _build, tags = parse_wheel_filename(file_name)
    except InvalidWheelFilename as exc:
        return f"{file_name} is not a valid wheel file name ({exc})"
    if subdir not in SUBDIR_ARCH:
        return f"{subdir} is not a Linux platform"
    if tags & target_tags(python_version, subdir):
        return None
    shown = ", ".join(sorted(str(t) for t in tags))
    python = f"CPython {python_version[0]}.{python_version[1]}"
    return f"wheel tags {shown} do not fit {python} on {subdir}"


def decide(
    package: PypiPackage,
    *,
    python_version: tuple[int, int],
    subdir: str,
    host_subdir: str | None,
    skip: Iterable[str] = (),
) -> PypiPackage:
    """The package with its action and, when it is not installed as is, the reason."""
    if canonicalize_name(package.name) in {canonicalize_name(s) for s in skip}:
        return replace(package, action="skip", reason="skipped with --skip-pypi")
    if package.kind == "wheel":
        misfit = wheel_misfit(package.file_name, python_version, subdir)
        if misfit:
            return replace(package, action="refuse", reason=misfit)
        return replace(package, action="install")
    if subdir != host_subdir:
        why = (
            f"{_BUILT_KINDS[package.kind]} must be built, and the target ({subdir}) is not "
            f"this machine ({host_subdir}): lock a pre-built wheel, or pass "
            f"--skip-pypi {package.name}"
        )
        return replace(package, action="refuse", reason=why)
    return replace(package, action="build", reason=EDITABLE if package.kind == "editable" else "")


def editable_notes(packages: Iterable[PypiPackage]) -> tuple[str, ...]:
    """The one-line note for each editable folder that is packed as a normal install.

    An editable install points back into the source folder, which the target does not have.
    """
    return tuple(
        f"{p.name} ({p.url}) is {EDITABLE}"
        for p in packages
        if p.kind == "editable" and p.action == "build"
    )


def conflicts(conda: Sequence[CondaPackage], pypi: Sequence[PypiPackage]) -> list[str]:
    """Distributions both conda and PyPI would install into the same site-packages."""
    conda_names = {canonicalize_name(p.name) for p in conda}
    return [
        f"{p.name} is installed both by conda and by PyPI: keep one (or --skip-pypi {p.name})"
        for p in pypi
        if p.action != "skip" and canonicalize_name(p.name) in conda_names
    ]

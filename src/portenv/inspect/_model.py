"""What `portenv inspect` finds: one frozen Report, which every output (text, JSON, HTML) shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ArchiveFacts",
    "FileRow",
    "Glibc",
    "InputKind",
    "Library",
    "Node",
    "Package",
    "Report",
]

InputKind = Literal["portenv", "pixi-pack", "env"]
"""A portenv archive (env.sh, env.tar), a pixi-pack archive (tar or folder), an unpacked env."""


@dataclass(frozen=True)
class ArchiveFacts:
    """The archive as a file: its bytes, and what its maker recorded in it."""

    shape: str
    """``env.sh``, ``env.tar``, ``pixi-pack tar`` or ``pixi-pack folder``."""
    size: int | None
    """Bytes of the file (None for a folder)."""
    sha256: str | None
    """Of the whole file, as ``pack`` prints it (None for a folder)."""
    compression: str | None
    made_by: str | None
    """``portenv 0.1.0``, ``pixi-pack 0.3.0``: the tool that wrote it, when it says so."""
    format: str | None
    meta: Mapping[str, str] = field(default_factory=dict)
    """A portenv archive's meta block, as it is."""


@dataclass(frozen=True)
class Package:
    """One package of the environment, with what it costs on disk."""

    key: str
    """``KIND:NAME``: unique within a report, what files and tree nodes point at."""
    kind: str
    name: str
    version: str | None
    build: str | None
    source: str | None
    channel: str | None
    license: str | None
    size: int | None
    """Installed bytes: measured from its files when they were seen, else the inventory's."""
    files: int | None


@dataclass(frozen=True)
class FileRow:
    """One regular file of the environment and the package (key) that put it there."""

    path: str
    size: int
    owner: str | None


@dataclass(frozen=True)
class Library:
    """A shared library copied from the build machine (or one left for the target to bring)."""

    name: str
    path: str | None
    source: str | None
    """Where it was found on the build machine."""
    needed_by: tuple[str, ...]
    size: int | None
    bundled: bool = True
    reason: str | None = None
    """Why a library is not bundled: ``driver`` or ``allowed``."""


@dataclass(frozen=True)
class Glibc:
    """The lowest glibc the environment runs on, and the ELF files that set it."""

    floor: str | None
    """The highest ``GLIBC_`` version any ELF file needs (None: no ELF file needs one)."""
    recorded: str | None
    """What the archive records (a portenv meta's ``glibc_floor``; a pixi-pack's records)."""
    files: tuple[tuple[str, str], ...]
    """(version, path) of the files needing the most, highest first."""


@dataclass(frozen=True)
class Node:
    """A box of the size map: a package, a folder in it, a file, or the small rest."""

    name: str
    kind: str
    """``root``, ``package`` (then `key` names it), ``folder``, ``file`` or ``rest``."""
    size: int
    files: int
    children: tuple[Node, ...] = ()
    key: str | None = None


@dataclass(frozen=True)
class Report:
    """Everything `inspect` says of one archive or environment."""

    path: str
    kind: InputKind
    platform: str | None
    python: str | None
    """The interpreter, relative to the environment's root."""
    archive: ArchiveFacts | None
    glibc: Glibc
    size: int
    """Bytes of the environment's regular files."""
    files: int
    links: int
    packages: tuple[Package, ...]
    """Largest first."""
    largest: tuple[FileRow, ...]
    libraries: tuple[Library, ...]
    tree: Node
    inventory: tuple[Mapping[str, object], ...] = ()
    """The package records as the input carries them (what the SBOM is made from)."""

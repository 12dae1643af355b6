"""What `portenv unpack` is asked to do, and what it did."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["ArchiveKind", "UnpackRequest", "UnpackResult"]

ArchiveKind = Literal["portenv", "pixi-pack"]


@dataclass(frozen=True)
class UnpackRequest:
    """Unpack `archive` into `output`/NAME on this machine.

    `archive` is a portenv ``env.tar`` or ``env.sh``, a pixi-pack ``environment.tar``, or a
    folder a pixi-pack tar was extracted to. `env_name` defaults to the archive's own
    (``env_name`` of a portenv meta block) or ``env``. `platform_check=False` skips the checks
    that the archive was built for this machine (architecture, C library, glibc version,
    pixi-pack platform): the files are laid out and relocated all the same.
    `compile_bytecode` also writes, before the environment is put in place, the bytecode of
    every module that has none, with the environment's python (one worker per core): for an
    environment installed once for users who cannot write into it.
    """

    archive: Path
    output: Path = Path(".")
    env_name: str | None = None
    force: bool = False
    platform_check: bool = True
    compile_bytecode: bool = False


@dataclass(frozen=True)
class UnpackResult:
    """The environment in place."""

    kind: ArchiveKind
    path: Path
    """The environment's folder (``DIR/NAME``), absolute."""
    files: int
    """Paths (files, folders, links) in the environment."""
    activate: Path
    """The script to source: ``DEST/bin/activate`` (portenv) or ``DIR/activate.sh``
    (pixi-pack, where pixi-unpack writes it)."""
    updated: bool = False
    """The archive was an update, applied to the environment already there."""

"""What a pack is asked for: the requests of each source, and the checks of its options that
need no source opened."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

import platformdirs

from portenv.errors import InputError, OutputError
from portenv.format import env_name_problem
from portenv.source.requirements import (
    RequirementsInput,
)
from portenv.write import (
    writer_for,
)
from portenv.write.entry import parse_entry

if TYPE_CHECKING:
    from portenv.pack.sources import Source
    from portenv.seal.bytecode import BytecodeScope

__all__ = [
    "PackRequest",
    "PixiPackRequest",
    "PlanRequest",
    "PythonRequest",
    "SourceRequest",
    "check_entry_option",
    "check_env_name",
    "check_glibc_option",
    "check_output",
    "default_cache",
]


def default_cache() -> Path:
    """The per-user cache shared by every project."""
    return Path(platformdirs.user_cache_dir("portenv"))


@dataclass(frozen=True)
class PlanRequest:
    """What to read: a project, one of its environments, one platform."""

    project: Path
    environment: str = "default"
    platform: str | None = None
    skip_pypi: tuple[str, ...] = ()


@dataclass(frozen=True)
class PythonRequest:
    """The conda-free source: a local CPython installation plus PyPI requirements."""

    python: Path
    """An interpreter, or a python-build-standalone archive (.tar.gz, .tar.zst)."""
    requirements: RequirementsInput = field(default_factory=RequirementsInput)
    platform: str | None = None
    skip_pypi: tuple[str, ...] = ()
    pip: bool = True
    """Install the interpreter's own ensurepip wheel of pip, as ``python -m venv`` does."""


@dataclass(frozen=True)
class PackRequest:
    """What to pack and where to write it."""

    source: SourceRequest | Source
    """What to pack: a request portenv knows (source_for), or a Source of the caller's own."""
    output: Path
    format: Literal["portenv", "pixi-pack", "tar.gz", "zip"] = "portenv"
    cache: Path | None = None
    env_name: str = "env"
    compression: str | None = None
    """The payload codec; None: the default (codecs.DEFAULT_COMPRESSION)."""
    level: int | None = None
    """The codec's level; None for its default."""
    jobs: int = 8
    inject: tuple[Path, ...] = ()
    """Local conda package files added to the environment (pixi-pack format only)."""
    reuse_sealed: bool = True
    """Reuse (and keep) the sealed prefix of an earlier pack of the same inputs."""
    sbom: bool = False
    """Also write a CycloneDX SBOM of the archive beside it (``OUTPUT.cdx.json``)."""
    allow_missing: tuple[str, ...] = ()
    """Shared libraries (sonames or globs) left to the target: never bundled, never missing."""
    glibc: str | None = None
    """The oldest glibc the archive must run on: a newer floor is refused (`--glibc`)."""
    bytecode: BytecodeScope = "all"
    """Which .py files ship with their .pyc (see seal.bytecode.BYTECODE_SCOPES)."""
    entry: str = ""
    """The command of the environment's bin/ that the env.sh runs (a one-file app)."""
    dereference: bool = False
    """A plain archive (tar.gz) stores symlinks as copies (see write.plain)."""


@dataclass(frozen=True)
class PixiPackRequest:
    """A pixi-pack archive (its tar, or the folder it was extracted to): `portenv convert`."""

    archive: Path


SourceRequest: TypeAlias = "PlanRequest | PythonRequest | PixiPackRequest"


def check_output(output: Path, cache: Path, *, portenv_format: bool = True) -> None:
    """Refuse, before any work, an output portenv could not write or should not write there."""
    if portenv_format:
        writer_for(output)
    parent = output.resolve().parent
    if not parent.is_dir():
        msg = f"output folder does not exist: {parent}"
        raise OutputError(msg, hint="create it first, or choose another -o")
    if parent == cache or cache in parent.parents:
        msg = f"output {output} is inside the cache folder {cache}"
        raise OutputError(msg, hint="write the archive somewhere else")


def check_glibc_option(glibc: str | None) -> None:
    """`--glibc` names a glibc release: 2.N."""
    if glibc is not None and not re.fullmatch(r"2\.[0-9]{1,3}", glibc):
        msg = f"invalid --glibc version: {glibc!r}"
        raise InputError(msg, hint="give a glibc release such as 2.28")


def check_entry_option(entry: str, output: Path) -> str:
    """`--entry`'s command in the form the header holds; only an env.sh can run one."""
    if not entry:
        return ""
    if output.suffix != ".sh":
        msg = f"--entry makes a runnable env.sh, not {output.name}"
        raise InputError(msg, hint="name the output like tool.sh")
    return parse_entry(entry)


def check_env_name(name: str) -> None:
    """The folder name the target creates must be one plain name (format.env_name_problem)."""
    problem = env_name_problem(name)
    if problem is not None:
        msg = f"invalid environment folder name: {problem}"
        raise InputError(msg, hint="use a plain folder name such as env")

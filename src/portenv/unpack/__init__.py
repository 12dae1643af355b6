"""Unpack an archive on a machine where portenv is installed: portenv's own, or pixi-pack's.

``unpack(UnpackRequest(archive, output))`` tells the kinds apart by their bytes, not their
names: an ``env.sh`` starts with ``#!`` and names its archive's offset, an ``env.tar`` has the
``portenv/meta`` member first, a pixi-pack is a tar (or a folder) holding ``pixi-pack.json``.
Every kind is checked completely before anything is written, built in a work folder beside
the destination and renamed into place; a failure leaves the destination as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from portenv.errors import (
    CompatibilityError,
    DiskSpaceError,
    ExtractionError,
    HashMismatchError,
    InputError,
    OutputError,
    PortenvError,
    RelocationError,
    StageError,
    UsageError,
)
from portenv.format import META_NAME, Exit
from portenv.reporting import NullReporter, Reporter
from portenv.source.pixipack import is_pixi_pack
from portenv.unpack._model import ArchiveKind, UnpackRequest, UnpackResult
from portenv.unpack._pixipack import unpack_pixi_pack
from portenv.unpack._portenv import (
    PortenvArchive,
    check_payload,
    embedded_offset,
    packages_text,
    payload_tar,
    read_archive,
    unpack_portenv,
)
from portenv.unpack._update import apply_update, is_update, update_summary

__all__ = [
    "ArchiveKind",
    "PortenvArchive",
    "UnpackRequest",
    "UnpackResult",
    "archive_kind",
    "check_payload",
    "describe",
    "exit_code_of",
    "payload_tar",
    "read_archive",
    "unpack",
]

_HEAD = 1 << 16


def archive_kind(path: Path) -> ArchiveKind:
    """What `path` holds, judged by its content; refuses anything else with a clear line."""
    if path.is_dir():
        if is_pixi_pack(path):
            return "pixi-pack"
        msg = f"{path} is a folder without pixi-pack.json"
        raise InputError(msg, hint="give an env.sh, an env.tar, or a pixi-pack tar or folder")
    try:
        with path.open("rb") as stream:
            head = stream.read(_HEAD)
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror or exc}"
        raise InputError(msg, hint="check the path and its permissions") from exc
    if embedded_offset(head) or head[:512].split(b"\0", 1)[0] == META_NAME.encode():
        return "portenv"
    if head.startswith(b"#!"):
        msg = f"{path} is a script without an archive (the standalone unpacker?)"
        raise InputError(msg, hint="give the env.sh or env.tar that portenv pack wrote")
    if is_pixi_pack(path):
        return "pixi-pack"
    msg = f"{path} is neither a portenv archive nor a pixi-pack archive"
    raise InputError(msg, hint="give an env.sh, an env.tar, or a pixi-pack tar or folder")


def unpack(request: UnpackRequest, reporter: Reporter | None = None) -> UnpackResult:
    """Unpack `request.archive` into ``request.output/NAME`` on this machine.

    Raises a PortenvError (one line and a hint) on any problem: InputError for an archive
    that is damaged, hostile or of an unknown kind, CompatibilityError for one built for
    another machine, OutputError/OutputExistsError for a destination problem,
    HashMismatchError for bytes that are not the recorded ones, StageError or
    RelocationError when installing or relocating fails.
    """
    reporter = reporter or NullReporter()
    with _unpacker_exit_codes():
        if archive_kind(request.archive) == "pixi-pack":
            return unpack_pixi_pack(request, reporter)
        archive = read_archive(request.archive)
        if is_update(archive):
            return apply_update(request, archive, reporter)
        return unpack_portenv(request, archive, reporter)


@contextmanager
def _unpacker_exit_codes() -> Iterator[None]:
    """A PortenvError raised inside leaves with the sh unpacker's exit code for its kind."""
    try:
        yield
    except PortenvError as error:
        error.exit_code = exit_code_of(error)
        raise


_EXIT_CODES: tuple[tuple[type[PortenvError], Exit], ...] = (
    (UsageError, Exit.USAGE),
    (CompatibilityError, Exit.TARGET),
    (HashMismatchError, Exit.INTEGRITY),
    (DiskSpaceError, Exit.DISK),
    (ExtractionError, Exit.EXTRACTION),
    (RelocationError, Exit.EXTRACTION),
    (StageError, Exit.EXTRACTION),
    (OutputError, Exit.DESTINATION),
    (InputError, Exit.ARCHIVE),
)
"""The first class an error is an instance of gives its code (subclasses come first)."""


def exit_code_of(error: PortenvError) -> int:
    """The sh unpacker's exit code for what `error` says went wrong (docs/format.md)."""
    return next((int(code) for kind, code in _EXIT_CODES if isinstance(error, kind)), 1)


def describe(path: Path, what: Literal["info", "list"]) -> str:
    """What ``--info`` (the meta block, after the archive checks) or ``--list`` (the packages,
    after the payload's sha256 is verified) print for a portenv archive; nothing is written."""
    with _unpacker_exit_codes():
        if archive_kind(path) != "portenv":
            msg = f"{path} is a pixi-pack archive: --info and --list read portenv archives"
            raise InputError(msg, hint="unpack it, or read its pixi-pack.json")
        archive = read_archive(path)
        if what == "list" and is_update(archive):
            msg = f"{path} is an update: it lists no packages"
            raise UsageError(msg, hint="use --info to see what it updates")
        if what == "list":
            return packages_text(archive)
    text = "".join(f"{key}={value}\n" for key, value in archive.meta.items())
    return text + (update_summary(archive) if is_update(archive) else "")

"""Apply an update (``portenv delta``) with portenv: the checks of the sh unpacker, in its order.

The archive's headers and meta block, this machine, the destination (it must exist: the
environment to update), the free space and the payload's sha256 are checked first; then the
update is extracted into the work folder beside the environment and the target's own engine
(portenv.target.update) checks the environment, builds the new tree and switches it in.
"""

from __future__ import annotations

import shutil

from portenv.errors import ExtractionError, OutputError
from portenv.reporting import Reporter
from portenv.target import update as engine
from portenv.unpack._host import HostFacts
from portenv.unpack._model import UnpackRequest, UnpackResult
from portenv.unpack._place import (
    Placement,
    check_free_space,
    check_path,
    resolve_destination,
    write_failed,
)
from portenv.unpack._portenv import PortenvArchive, check_host, check_payload, payload_tar

__all__ = ["apply_update", "is_update", "update_summary"]

UPDATE_FORMAT = "update1"


def is_update(archive: PortenvArchive) -> bool:
    """An update (``format=update1``) rather than an archive."""
    return archive.meta.get("format") == UPDATE_FORMAT


def update_summary(archive: PortenvArchive) -> str:
    """What ``--info`` adds for an update: from, to, and the counts."""
    meta = archive.meta
    return (
        f"update from {meta.get('from_sha256', '?')} to {meta.get('to_sha256', '?')}: "
        f"adds {meta.get('adds', '?')}, changes {meta.get('changes', '?')}, "
        f"removes {meta.get('removes', '?')} files\n"
    )


def apply_update(
    request: UnpackRequest, archive: PortenvArchive, reporter: Reporter
) -> UnpackResult:
    """Update the environment at ``DIR/NAME`` in place: every check first, then atomically."""
    if request.platform_check:
        check_host(archive, HostFacts.detect())
    name = request.env_name or archive.meta.get("env_name") or "env"
    dest = resolve_destination(request.output, name)
    check_path(dest, archive.number("prefix_max"))
    if not (dest.path / ".portenv").is_dir():
        msg = f"{dest.path} is not a portenv environment to update"
        raise OutputError(msg, hint="give the -o DIR (and --env-name) of the environment to update")
    check_free_space(dest, archive.number("unpacked_kib"))
    check_payload(archive)
    token = reporter.on_task_start(f"updating {dest.path}", None)
    placement = Placement(dest, force=True)
    with placement as work:
        aside = dest.sibling("old")
        placement.keep_aside(aside)
        try:
            with payload_tar(archive) as payload:
                payload.extractall(work, filter="data")
            jobs = 0 if request.compile_bytecode else None  # 0: one worker per core
            count = engine.apply(str(dest.path), str(work), str(aside), jobs)
        except engine.UpdateError as exc:
            # the sh unpacker's codes: 5, the env is not the one the update is for; else 8
            error = OutputError if exc.code == 5 else ExtractionError
            raise error(str(exc), hint=exc.hint) from exc
        except OSError as exc:
            raise write_failed(dest, exc) from exc
        placement.keep_aside(None)
        shutil.rmtree(aside, ignore_errors=True)
    reporter.on_task_complete(token)
    return UnpackResult("portenv", dest.path, count, dest.path / "bin" / "activate", updated=True)

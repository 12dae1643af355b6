"""Make an update from two portenv archives: `portenv delta OLD NEW -o update.sh`.

Both payloads are verified and read once to list their trees (each file's sha256 in the
payload's form); the plan (portenv.write.delta) says which files of NEW the update carries,
and a second pass over NEW's payload takes exactly those out into a stage folder beside the
output, which is then written as an update container.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from portenv.errors import InputError
from portenv.reporting import NullReporter, Reporter
from portenv.target.update import MANIFEST, canonical_manifest
from portenv.unpack import PortenvArchive, check_payload, payload_tar, read_archive
from portenv.write import WrittenArchive, writer_for
from portenv.write.delta import Tree, UpdateFacts, plan_delta, write_update

__all__ = ["DeltaRequest", "check_delta_output", "make_update", "read_tree"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class DeltaRequest:
    """Write to `output` the update that turns an unpacked `old` into an unpacked `new`."""

    old: Path
    new: Path
    output: Path


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "l"
    if member.isdir():
        return "d"
    if member.isfile():
        return "x" if member.mode & 0o100 else "f"
    return "?"


def _digest(payload: tarfile.TarFile, member: tarfile.TarInfo) -> tuple[str, bytes | None]:
    """The member's sha256, and its bytes when it is the relocation manifest."""
    stream = payload.extractfile(member)
    assert stream is not None
    if member.name == MANIFEST:
        data = stream.read()
        return "", data
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest(), None


def read_tree(archive: PortenvArchive) -> Tree:
    """The tree of an archive's payload, as the target lists it once unpacked."""
    listing: list[list[str]] = []
    manifest = b""
    with payload_tar(archive) as payload:
        for member in payload:
            kind = _kind(member)
            value = member.linkname if kind == "l" else ""
            if kind in "fx":
                value, data = _digest(payload, member)
                manifest = data if data is not None else manifest
            listing.append([member.name.removeprefix("./"), kind, value])
    if not manifest:
        msg = f"{archive.path} has no {MANIFEST}"
        raise InputError(msg, hint="pack it again with a newer portenv")
    parsed = json.loads(manifest.decode("utf-8"))
    canonical = canonical_manifest(manifest, str(parsed["prefix"]))
    for entry in listing:
        if entry[0] == MANIFEST:
            entry[2] = hashlib.sha256(canonical).hexdigest()
    return Tree(listing, parsed)


def _open(path: Path, role: str) -> PortenvArchive:
    archive = read_archive(path)
    if archive.meta.get("format") != "1":
        msg = f"{path} is an update, not an archive: {role} must be an env.sh or env.tar"
        raise InputError(msg, hint="give the archives that portenv pack wrote")
    check_payload(archive)
    return archive


def _take_shipped(archive: PortenvArchive, ship: set[str], stage: Path) -> None:
    """Extract the shipped files of the new payload under ``stage/.portenv-update/files``."""
    files = stage / ".portenv-update" / "files"
    with payload_tar(archive) as payload:
        for member in payload:
            name = member.name.removeprefix("./")
            if name not in ship:
                continue
            if name.startswith("/") or ".." in name.split("/"):
                msg = f"{archive.path} holds a member outside the environment: {name}"
                raise InputError(msg, hint="it was not made by portenv: do not use it")
            target = files / name
            target.parent.mkdir(parents=True, exist_ok=True)
            stream = payload.extractfile(member)
            assert stream is not None
            with target.open("wb") as sink:
                while chunk := stream.read(_CHUNK):
                    sink.write(chunk)
            os.chmod(target, 0o755 if member.mode & 0o100 else 0o644)


def check_delta_output(old: Path, output: Path) -> None:
    """Before anything is read or packed: an output name portenv writes, not OLD itself."""
    writer_for(output)
    if output.exists() and old.exists() and output.resolve() == old.resolve():
        msg = f"the output {output} is OLD itself"
        raise InputError(msg, hint="write the update to another file")


def make_update(request: DeltaRequest, reporter: Reporter | None = None) -> WrittenArchive:
    """Compare OLD and NEW and write the update; nothing is written on any refusal."""
    reporter = reporter or NullReporter()
    check_delta_output(request.old, request.output)
    old, new = _open(request.old, "OLD"), _open(request.new, "NEW")
    for key in ("platform", "arch"):
        if old.meta[key] != new.meta[key]:
            msg = f"OLD is for {key} {old.meta[key]}, NEW for {new.meta[key]}"
            raise InputError(msg, hint="an update goes between two archives of one platform")
    token = reporter.on_task_start("comparing", None)
    plan = plan_delta(read_tree(old), read_tree(new))
    reporter.on_task_complete(token)
    with tempfile.TemporaryDirectory(dir=request.output.parent, prefix=".portenv-delta.") as tmp:
        stage = Path(tmp)
        _take_shipped(new, set(plan.ship), stage)
        facts = UpdateFacts(old.meta, new.meta)
        return write_update(stage, plan, facts, request.output, reporter=reporter)

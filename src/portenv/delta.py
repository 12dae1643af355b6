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
from portenv.target.update import MANIFEST, canonical_manifest, payload_form
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


def _digests(payload: tarfile.TarFile, member: tarfile.TarInfo) -> tuple[str, bytes]:
    """The member's sha256, and its bytes when it may be a text file of the relocation
    manifest (the manifest itself, or a script starting with a `#!` line), whose digest is
    taken of its payload form once the manifest is known."""
    stream = payload.extractfile(member)
    assert stream is not None
    digest = hashlib.sha256()
    first = stream.read(_CHUNK)
    kept = first if first.startswith(b"#!") or member.name == MANIFEST else b""
    while first:
        digest.update(first)
        first = stream.read(_CHUNK)
        if kept and first:
            kept += first
    return digest.hexdigest(), kept


def read_tree(archive: PortenvArchive) -> Tree:
    """The tree of an archive's payload, as the target lists it once unpacked."""
    listing: list[list[str]] = []
    texts: dict[str, bytes] = {}
    with payload_tar(archive) as payload:
        for member in payload:
            kind = _kind(member)
            value = member.linkname if kind == "l" else ""
            name = member.name.removeprefix("./")
            if kind in "fx":
                value, data = _digests(payload, member)
                if data:
                    texts[name] = data
            listing.append([name, kind, value])
    if MANIFEST not in texts:
        msg = f"{archive.path} has no {MANIFEST}"
        raise InputError(msg, hint="pack it again with a newer portenv")
    manifest = json.loads(texts[MANIFEST].decode("utf-8"))
    holder = str(manifest["prefix"])
    entries = {str(e["path"]): e for e in manifest["files"]}
    for entry in listing:
        path = entry[0]
        if path == MANIFEST:
            entry[2] = hashlib.sha256(canonical_manifest(texts[path], holder)).hexdigest()
        elif path in texts and entries.get(path, {}).get("mode") == "text":
            form = payload_form(texts[path], entries[path], holder.encode(), holder.encode())
            entry[2] = hashlib.sha256(form).hexdigest()
    return Tree(listing, manifest)


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

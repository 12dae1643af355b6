"""Write a sealed prefix as an archive: the format is chosen by the output's suffix."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from portenv.errors import OutputError
from portenv.model import PackMeta
from portenv.reporting import NullReporter, Reporter
from portenv.seal import SealedPrefix
from portenv.seal.listing import Entry
from portenv.write.atomic import atomic_output
from portenv.write.codecs import DEFAULT_COMPRESSION
from portenv.write.container import (
    PAYLOAD_OFFSET,
    container_head,
    container_tail,
    payload_cuts,
    render_unpacker,
)
from portenv.write.entry import check_entry
from portenv.write.kept import KeptPayloads
from portenv.write.payload import PayloadMismatchError, write_payload
from portenv.write.sbom import read_inventory
from portenv.write.unzstd import decompressor

__all__ = [
    "FORMATS",
    "PayloadMismatchError",
    "WrittenArchive",
    "atomic_output",
    "publish_sha256",
    "write_archive",
]

HeaderOf = Callable[[int, str, str], bytes]
FORMATS: dict[str, HeaderOf] = {
    ".sh": lambda total, sha256, entry: render_unpacker(
        embedded=True, total_size=total, payload_sha256=sha256, entry=entry
    ),
    ".tar": lambda total, sha256, entry: b"",
}
"""Output suffix -> what comes before the container, given the whole file's size, the
payload's sha256 and the entry command (env.sh's unpacker, which checks that size first;
nothing for env.tar). Its length never depends on them."""


@dataclass(frozen=True)
class WrittenArchive:
    """An archive on disk, with the hash users can publish beside it."""

    path: Path
    sha256: str
    meta: PackMeta | None
    """The meta block of a portenv archive; None for other formats."""
    tar_sha256: str = ""
    """Digest of the environment's tar before compression (payload.tar_digest; portenv
    archives)."""
    inventory: tuple[Mapping[str, object], ...] = ()
    """The packages inside, as `.portenv/packages.json` lists them (what the SBOM lists)."""
    sbom: Path | None = None
    """The CycloneDX document written beside the archive, if one was asked for."""
    format_name: str = ""
    """A plain archive's format (``tar.gz``, ``zip``; see write.plain); empty otherwise."""


def writer_for(output: Path) -> HeaderOf:
    """What goes before the container for an output name, or a clear refusal."""
    try:
        return FORMATS[output.suffix]
    except KeyError:
        known = ", ".join(FORMATS)
        msg = f"unknown output type {output.suffix or '(no suffix)'!r} for {output.name}"
        raise OutputError(msg, hint=f"name the output with one of: {known}") from None


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_archive(
    sealed: SealedPrefix,
    output: Path,
    *,
    env_name: str = "env",
    compression: str = DEFAULT_COMPRESSION,
    level: int | None = None,
    entries: list[Entry] | None = None,
    expect_tar_sha256: str | None = None,
    reporter: Reporter | None = None,
    entry: str = "",
    kept: KeptPayloads | None = None,
) -> WrittenArchive:
    """Compress the sealed prefix straight into `output`'s place, then write what goes before.

    The payload is written at its final offset in the temp file, so no copy of it is made;
    with `expect_tar_sha256` the tar stream's digest must be it, else PayloadMismatchError is
    raised and nothing is published. `entry` (an env.sh's command, `pack --entry`) must be a
    command of the environment's bin/, checked before anything is written. With `kept` (the
    cached prefix's payloads), a payload kept for the expected tar is copied instead of
    compressed again, and a new one is kept.
    """
    reporter = reporter or NullReporter()
    header_of = writer_for(output)
    head = header_of(0, "", entry)
    if entry:
        check_entry(sealed.path, entry)
    unzstd = decompressor(sealed.meta.arch) if compression == "zstd" else None
    token = reporter.on_task_start("compressing", sealed.meta.unpacked_kib * 1024)
    with atomic_output(output, 0o755 if output.suffix == ".sh" else 0o644) as sink:
        start = len(head) + PAYLOAD_OFFSET
        sink.seek(start)
        info = None
        if kept is not None and expect_tar_sha256 is not None:
            info = kept.copy_into(
                sink, compression=compression, level=level, tar_sha256=expect_tar_sha256
            )
        if info is None:
            info = write_payload(
                sealed.path,
                sink,
                compression=compression,
                level=level,
                entries=entries,
                advance=lambda n: reporter.on_task_advance(token, n),
            )
            if expect_tar_sha256 is not None and info.tar_sha256 != expect_tar_sha256:
                msg = f"the tar of {sealed.path} is not the one recorded when it was made"
                raise PayloadMismatchError(msg)
            if kept is not None:
                kept.keep(sink, start, info, compression=compression, level=level)
                sink.seek(start + info.size)
        meta = replace(
            sealed.meta,
            payload_size=info.size,
            payload_sha256=info.sha256,
            payload_cuts=payload_cuts(info),
            env_name=env_name,
            compression=compression,
            unzstd_size=len(unzstd.gz) if unzstd else 0,
            unzstd_sha256=unzstd.sha256 if unzstd else "",
        )
        sink.write(container_tail(info.size, unzstd.gz if unzstd else b""))
        total = sink.tell()
        sink.seek(0)
        sink.write(header_of(total, info.sha256, entry) + container_head(meta))
    reporter.on_task_complete(token)
    inventory = tuple(read_inventory(sealed.path))
    return WrittenArchive(
        output, publish_sha256(output), meta, info.tar_sha256, inventory=inventory
    )


def publish_sha256(output: Path) -> str:
    """Hash the finished output and write `OUTPUT.sha256` (sha256sum's format) beside it."""
    sha256 = _sha256_of(output)
    sidecar = output.with_name(output.name + ".sha256")
    with atomic_output(sidecar) as stream:
        stream.write(f"{sha256}  {output.name}\n".encode())
    return sha256

"""Read a portenv archive (``env.sh``, ``env.tar``) for inspect, without unpacking it.

The meta block is read and checked by portenv.unpack's reader, the payload's sha256 is
verified, then the payload is streamed once (portenv.inspect._scan): nothing of it is written
but one ELF file at a time into the scratch folder.
"""

from __future__ import annotations

from pathlib import Path

from portenv.fetch import file_digest
from portenv.inspect._model import ArchiveFacts
from portenv.inspect._report import Found
from portenv.inspect._scan import Scan, Scanner
from portenv.stage.bundle import BUNDLED_JSON
from portenv.unpack import check_payload, payload_tar, read_archive
from portenv.write.sbom import shipped_inventory

__all__ = ["INVENTORY", "inventory_of", "read_portenv_archive"]

INVENTORY = ".portenv/packages.json"


def inventory_of(scan: Scan) -> list[dict[str, object]]:
    """What `pack` lists of a sealed prefix (portenv.write.sbom.read_inventory) from the
    records read: `.portenv/packages.json`, and the libraries `.portenv/bundled.json` names."""
    records = scan.records
    return shipped_inventory(records.get(INVENTORY), records.get(BUNDLED_JSON), scan.digests.get)


def read_portenv_archive(path: Path, scratch: Path) -> Found:
    """Everything inspect shows of a portenv archive; InputError when it is damaged."""
    archive = read_archive(path)
    check_payload(archive)
    scanner = Scanner(scratch)
    with payload_tar(archive) as payload:
        scanner.tar(payload)
    scan = scanner.scan
    meta = archive.meta
    facts = ArchiveFacts(
        shape="env.sh" if archive.offset else "env.tar",
        size=path.stat().st_size,
        sha256=file_digest(path),
        compression=meta.get("compression"),
        made_by=f"portenv {meta['portenv_version']}" if meta.get("portenv_version") else None,
        format=meta.get("format"),
        meta=dict(meta),
    )
    return Found(
        path=str(path),
        kind="portenv",
        scan=scan,
        inventory=inventory_of(scan),
        archive=facts,
        platform=meta.get("platform"),
        python=meta.get("python"),
        recorded_floor=meta.get("glibc_floor"),
    )

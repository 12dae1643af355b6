"""Turn a pixi-pack archive into a portenv archive, offline: the pack is the source.

The pack's verified packages and wheels go through the same stages as a lock's fetched ones
(stage -> wheels -> seal -> write), so ``portenv convert environment.tar -o env.sh`` writes
what ``portenv pack`` writes for the same packages; only ``.portenv/packages.json`` differs,
naming where in the pixi-pack each file was (a pixi-pack does not keep download URLs).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from portenv.model import Subdir
from portenv.pack import (
    ArchiveJob,
    check_entry_option,
    check_env_name,
    check_output,
    default_cache,
    stage_seal_write,
)
from portenv.platforms import arch_of
from portenv.reporting import NullReporter, Reporter
from portenv.seal.inventory import conda_entry, wheel_facts
from portenv.source.pixipack import PixiPack, open_pixi_pack, read_metadata
from portenv.stage.wheels import FetchedWheel
from portenv.write import WrittenArchive
from portenv.write.codecs import check_level

__all__ = ["ConvertRequest", "convert", "pixi_pack_inventory"]


@dataclass(frozen=True)
class ConvertRequest:
    """Convert the pixi-pack `archive` (a tar or an extracted folder) into `output`.

    `output` ends in ``.sh`` (self-extracting) or ``.tar``. `cache` holds the scratch folder
    (default: portenv's user cache); nothing is downloaded.
    """

    archive: Path
    output: Path
    env_name: str = "env"
    level: int | None = None
    cache: Path | None = None
    compression: str = "gzip"
    entry: str = ""
    """The command of the environment's bin/ that the env.sh runs (`pack --entry`)."""


def pixi_pack_inventory(pack: PixiPack) -> list[dict[str, object]]:
    """Each package of a pixi-pack, where in it it was, its hash, source and licence (from its
    record, or its wheel's METADATA): ``.portenv/packages.json`` of the converted archive, and
    what ``portenv inspect`` lists of the pack itself."""
    entries: list[dict[str, object]] = []
    for fetched in pack.conda:
        entries.append({**conda_entry(fetched.package), "from": "pixi-pack"})
    for wheel in pack.wheels:
        entry: dict[str, object] = {
            "kind": "pypi",
            "name": wheel.package.name,
            "version": wheel.package.version,
            "url": pack.location(wheel.path),
            "built_from_source": False,
            "sha256": wheel.sha256,
            "sha256_from": "computed",
            "from": "pixi-pack",
        }
        entries.append({**wheel_facts(entry, wheel.path), **entry})
    return entries


def convert(request: ConvertRequest, reporter: Reporter | None = None) -> WrittenArchive:
    """Write the portenv archive of a pixi-pack archive; nothing is downloaded or executed."""
    reporter = reporter or NullReporter()
    cache = (request.cache or default_cache()).resolve()
    check_output(request.output, cache)
    check_env_name(request.env_name)
    check_level(request.compression, request.level)
    entry = check_entry_option(request.entry, request.output)
    arch_of(read_metadata(request.archive).platform)  # refuses platforms portenv cannot pack
    scratch_root = cache / "staging"
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=scratch_root, prefix="convert-"))
    try:
        pack = open_pixi_pack(request.archive, scratch / "pack")
        job = ArchiveJob(
            pack.conda,
            Subdir(pack.metadata.platform),
            request.output,
            request.env_name,
            request.compression,
            request.level,
            cache,
            entry=entry,
        )
        wheels = [FetchedWheel(w, w.path, w.package.url) for w in pack.wheels]
        return stage_seal_write(
            job, lambda _staged: wheels, lambda _w: pixi_pack_inventory(pack), reporter
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

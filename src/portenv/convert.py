"""Turn a pixi-pack archive into a portenv archive, offline: the pack is the source.

The pack's verified packages and wheels go through the same chain as a lock's fetched ones
(`pack.PixiPackSource` -> stage -> wheels -> seal -> write), so ``portenv convert
environment.tar -o env.sh`` writes what ``portenv pack`` writes for the same packages; only
``.portenv/packages.json`` differs, naming where in the pixi-pack each file was (a pixi-pack
does not keep download URLs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from portenv.pack import PackRequest, PixiPackRequest, pack
from portenv.reporting import Reporter
from portenv.write import WrittenArchive
from portenv.write.codecs import chosen

__all__ = ["ConvertRequest", "convert"]


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
    compression: str | None = None
    """None: the default codec (codecs.DEFAULT_COMPRESSION)."""
    entry: str = ""
    """The command of the environment's bin/ that the env.sh runs (`pack --entry`)."""


def convert(request: ConvertRequest, reporter: Reporter | None = None) -> WrittenArchive:
    """Write the portenv archive of a pixi-pack archive; nothing is downloaded or executed."""
    return pack(
        PackRequest(
            PixiPackRequest(request.archive),
            request.output,
            cache=request.cache,
            env_name=request.env_name,
            compression=chosen(request.compression),
            level=request.level,
            entry=request.entry,
        ),
        reporter,
    )

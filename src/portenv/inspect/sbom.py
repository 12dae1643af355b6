"""``portenv inspect --sbom``: the CycloneDX document ``pack --sbom`` writes, for an existing input.

The document is portenv.write.sbom's, made from the same inventory (`.portenv/packages.json`
of a portenv archive or env, the packages of a pixi-pack) with the same archive properties and
``SOURCE_DATE_EPOCH`` rule, so for a portenv archive it is byte for byte what ``pack --sbom``
wrote beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

from portenv.inspect._model import Report
from portenv.write.sbom import SBOM_SUFFIX, publish_sbom

__all__ = ["sbom_path", "sbom_properties", "write_sbom"]


def sbom_properties(report: Report) -> dict[str, str]:
    """``portenv:*`` properties of the archive component, as `pack` gives them."""
    meta = report.archive.meta if report.archive is not None else {}
    if report.kind == "portenv":
        return {
            "format": "portenv",
            "platform": meta["platform"],
            "glibc_floor": meta["glibc_floor"],
        }
    if report.kind == "pixi-pack":
        return {"format": "pixi-pack"}
    return {"platform": report.platform} if report.platform else {}


def sbom_path(source: Path) -> Path:
    """``INPUT.cdx.json`` beside the input, as `pack` names it beside its archive."""
    absolute = Path(os.path.abspath(source))  # names ".", keeps a symlink's own name
    return absolute.with_name(absolute.name + SBOM_SUFFIX)


def write_sbom(report: Report, output: Path, timestamp: str | None) -> Path:
    """Write the SBOM of the report's input to `output` (atomically); its path.

    `timestamp` is `sbom_timestamp()`'s, read before any work as `pack` does.
    """
    source = Path(os.path.abspath(report.path))
    sha256 = report.archive.sha256 if report.archive is not None else None
    return publish_sbom(
        source,
        report.inventory,
        sha256,
        properties=sbom_properties(report),
        timestamp=timestamp,
        output=output,
    )

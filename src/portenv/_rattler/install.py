"""Linking verified package files into a prefix with rattler's installer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rattler

from portenv.errors import StageError
from portenv.model import FetchedPackage

__all__ = ["install"]


def _local_records(packages: Sequence[FetchedPackage]) -> list[Any]:
    """The records re-pointed at the verified cache files, so rattler never downloads."""
    return [
        rattler.RepoDataRecord(
            f.package.record, f.package.file_name, f.path.as_uri(), f.package.record.channel
        )
        for f in packages
    ]


def install(
    packages: Sequence[FetchedPackage],
    prefix: Path,
    *,
    subdir: str,
    cache_dir: Path,
    placeholder: str | None = None,
) -> None:
    """Link the fetched packages into `prefix`; with `placeholder`, write that path instead.

    A staging prefix gets the placeholder everywhere a path goes; a real prefix (a local env)
    is compared with its conda-meta, so an update only changes what differs. Link scripts
    never run: nothing of the target executes, so cross-platform packing works.
    """
    try:
        asyncio.run(
            rattler.install(
                _local_records(packages),
                target_prefix=prefix,
                cache_dir=cache_dir,
                platform=rattler.Subdir(subdir),
                execute_link_scripts=False,
                show_progress=False,
                alternative_target_prefix=placeholder,
            )
        )
    except Exception as exc:
        msg = f"installing the packages into {prefix} failed: {exc}"
        raise StageError(msg, hint="run with --debug for the full cause") from exc

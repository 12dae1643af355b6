"""Install the fetched packages once, into a staging prefix that holds a placeholder path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from portenv import _rattler
from portenv.errors import RelocationError, StageError
from portenv.model import FetchedPackage, StagedPrefix, Subdir

__all__ = ["DEFAULT_PREFIX_MAX", "make_placeholder", "prefix_capacity", "stage"]

DEFAULT_PREFIX_MAX = 255
"""conda-build and rattler-build reserve 255 bytes; a longer path would not fit their binaries."""
MIN_PREFIX_MAX = 16
_UNIT = "/portenv_placehold"
_HOST_PATH_KEYS = ("extracted_package_dir", "package_tarball_full_path")


def make_placeholder(length: int) -> str:
    """An absolute path of exactly `length` bytes that no real file holds by accident."""
    return (_UNIT * (length // len(_UNIT) + 1))[:length]


def prefix_capacity(packages: Sequence[FetchedPackage]) -> int:
    """The longest prefix every binary placeholder of every package can take."""
    capacity = DEFAULT_PREFIX_MAX
    for fetched in packages:
        for path, placeholder, mode in _rattler.package_placeholders(fetched.path):
            if mode == "binary" and len(placeholder) < capacity:
                capacity = len(placeholder)
                if capacity < MIN_PREFIX_MAX:
                    msg = (
                        f"{fetched.package.name} reserves only {capacity} bytes for its prefix"
                        f" in {path}"
                    )
                    raise RelocationError(msg, hint="use a newer build of that package")
    return capacity


def _python_of(packages: Sequence[FetchedPackage], prefix: Path) -> str:
    python = next((f.package for f in packages if f.package.name == "python"), None)
    if python is None:
        msg = "the environment has no python package"
        raise StageError(msg, hint="add python to the environment: portenv relocates with it")
    major_minor = ".".join(python.version.split(".")[:2])
    relative = f"bin/python{major_minor}"
    if not (prefix / relative).exists():
        msg = f"the python package {python.version} has no {relative}"
        raise StageError(msg, hint="use a python package that installs bin/pythonX.Y")
    return relative


def _scrub_conda_meta(prefix: Path, packages: Sequence[FetchedPackage]) -> None:
    """Make conda-meta name the lock's URLs, not the build machine's cache paths."""
    by_file = {f.package.file_name: f.package for f in packages}
    for record in sorted((prefix / "conda-meta").glob("*.json")):
        data = json.loads(record.read_text(encoding="utf-8"))
        package = by_file.get(data.get("fn", ""))
        if package is None:
            continue
        for key in _HOST_PATH_KEYS:
            data.pop(key, None)
        if isinstance(data.get("link"), dict):
            data["link"].pop("source", None)
        data["url"] = package.url
        if package.record is not None and package.record.channel:
            data["channel"] = package.record.channel
        record.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def stage(
    packages: Sequence[FetchedPackage],
    prefix: Path,
    *,
    subdir: Subdir,
    rattler_cache: Path,
    prefix_max: int,
) -> StagedPrefix:
    """Install `packages` into the empty folder `prefix`, every self-reference a placeholder."""
    placeholder = make_placeholder(prefix_max)
    _rattler.install(
        packages, prefix, placeholder=placeholder, subdir=subdir, cache_dir=rattler_cache
    )
    (prefix / "CACHEDIR.TAG").unlink(missing_ok=True)
    _scrub_conda_meta(prefix, packages)
    return StagedPrefix(prefix, placeholder, subdir, _python_of(packages, prefix))

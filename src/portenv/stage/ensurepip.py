"""pip for the conda-free source: the wheels the interpreter's own ensurepip would install.

``python -m venv`` gives a new environment pip offline, from the wheels bundled with the
standard library (``ensurepip/_bundled``, or Debian's WHEEL_PKG_DIR); a --python environment
gets the same ones, installed like every other wheel, so pip works on the target at once.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from portenv.fetch import file_digest
from portenv.model import PypiPackage, PypiSource, StagedPrefix
from portenv.stage.cpython_inspect import BaseInterpreter
from portenv.stage.wheels import FetchedWheel

__all__ = ["SCHEME", "bundled_names", "ensurepip_wheels"]

SCHEME = "ensurepip://"
"""How `.portenv/packages.json` names where these wheels came from: a path in the env."""


def bundled_names(version: tuple[int, int, int]) -> tuple[str, ...]:
    """What ensurepip installs: pip, and setuptools before 3.12 (which dropped it)."""
    return ("pip",) if version >= (3, 12) else ("pip", "setuptools")


def _folders(staged: StagedPrefix, base: BaseInterpreter) -> list[Path]:
    """Where the copied installation keeps its bundled wheels."""
    folders = [staged.path / base.stdlib.relative_to(base.prefix) / "ensurepip" / "_bundled"]
    wheel_dir = base.wheel_dir
    if wheel_dir is not None and base.prefix in wheel_dir.parents:
        folders.append(staged.path / wheel_dir.relative_to(base.prefix))
    return folders


def _version_key(wheel: Path) -> tuple[int, ...]:
    version = wheel.name.split("-")[1]
    return tuple(int(part) if part.isdigit() else -1 for part in version.split("."))


def ensurepip_wheels(
    staged: StagedPrefix, base: BaseInterpreter, skip: Collection[str]
) -> tuple[list[FetchedWheel], list[str]]:
    """(the bundled wheels to install, the names that have none) for what ensurepip installs.

    Names in `skip` (the requirements install them: their version wins) are left out.
    """
    wheels: list[FetchedWheel] = []
    missing: list[str] = []
    for name in bundled_names(base.version):
        if name in skip:
            continue
        found = [w for f in _folders(staged, base) for w in f.glob(f"{name}-*-py3-none-any.whl")]
        if not found:
            missing.append(name)
            continue
        wheel = max(found, key=_version_key)
        url = SCHEME + str(wheel.relative_to(staged.path))
        sha256 = file_digest(wheel)
        package = PypiPackage(name, wheel.name.split("-")[1], url, "wheel", None)
        wheels.append(FetchedWheel(PypiSource(package, wheel, "file", sha256), wheel, url))
    return wheels, missing

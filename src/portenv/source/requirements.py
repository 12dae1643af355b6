"""Requirements for a plain CPython (conda-free source) resolved into locked PyPI files.

uv resolves for the TARGET (the interpreter's version, the platform's manylinux tags) and
exports PEP 751 `pylock.toml`, which names every file with its URL and sha256; a project's own
`pylock.toml` is read as it is. Each package then gets the best-fitting wheel for the target,
or its sdist to build when none fits. Hashes a requirements file pins (`--hash=sha256:...`)
must match the file chosen.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename

from portenv.errors import InputError, ResolveError
from portenv.model import PypiPackage
from portenv.platforms import SUBDIR_ARCH
from portenv.source.pypi import ordered_target_tags

__all__ = ["RequirementsInput", "pinned_hashes", "resolve_requirements"]

_HASH = re.compile(r"--hash[=\s]+sha256:([0-9a-fA-F]{64})")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class RequirementsInput:
    """Where the requirements come from: requirements files, and/or a Python project folder."""

    requirement_files: tuple[Path, ...] = ()
    project: Path | None = None


def pinned_hashes(requirements: Path) -> dict[str, set[str]]:
    """The sha256 hashes a `--require-hashes` style file allows, per distribution."""
    allowed: dict[str, set[str]] = {}
    logical = requirements.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in logical.splitlines():
        hashes = {h.lower() for h in _HASH.findall(line)}
        name = _NAME.match(line.split("#", 1)[0])
        if hashes and name:
            allowed.setdefault(canonicalize_name(name.group(1)), set()).update(hashes)
    return allowed


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


def _uv_platform(subdir: str) -> str:
    return f"{SUBDIR_ARCH[subdir]}-manylinux_2_28"


def _inputs(source: RequirementsInput) -> list[str]:
    inputs = [str(f) for f in source.requirement_files]
    if source.project is not None:
        pyproject = source.project / "pyproject.toml"
        if not pyproject.is_file():
            msg = f"no pyproject.toml in {source.project}"
            raise InputError(msg, hint="pass the folder of a Python project, or use -r FILE")
        inputs.append(str(pyproject))
    for item in inputs:
        if not Path(item).is_file():
            msg = f"requirements file not found: {item}"
            raise InputError(msg, hint="check the path given to -r")
    return inputs


def _compile(source: RequirementsInput, version: tuple[int, int], subdir: str) -> str:
    """Run uv's resolver for the target and return the pylock.toml text."""
    with tempfile.TemporaryDirectory(prefix="portenv-resolve-") as scratch:
        out = Path(scratch) / "pylock.toml"
        argv = [_uv(), "pip", "compile", "--quiet", "--no-config", "--format", "pylock.toml"]
        argv += ["--python-version", f"{version[0]}.{version[1]}"]
        argv += ["--python-platform", _uv_platform(subdir), "-o", str(out), *_inputs(source)]
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            explanation = done.stderr.strip() or "uv failed without a message"
            msg = f"cannot resolve the requirements for Python {version[0]}.{version[1]}:\n"
            raise ResolveError(msg + explanation, hint="relax the requirement uv names")
        return out.read_text(encoding="utf-8")


def _pick_wheel(wheels: Sequence[dict[str, Any]], order: dict[Tag, int]) -> dict[str, Any] | None:
    best: tuple[int, dict[str, Any]] | None = None
    for wheel in wheels:
        name = str(wheel.get("name") or str(wheel["url"]).rsplit("/", 1)[-1])
        ranks = [order[t] for t in parse_wheel_filename(name)[3] if t in order]
        if ranks and (best is None or min(ranks) < best[0]):
            best = (min(ranks), wheel)
    return None if best is None else best[1]


def _package(entry: dict[str, Any], order: dict[Tag, int]) -> PypiPackage:
    name, version = str(entry["name"]), str(entry.get("version", ""))
    wheel = _pick_wheel(entry.get("wheels", []), order)
    sdist = entry.get("sdist")
    chosen = wheel or sdist
    if chosen is None:
        msg = f"{name} {version} has no wheel for the target and no sdist"
        raise ResolveError(msg, hint="pin a version that publishes a fitting wheel")
    url = str(chosen.get("url") or chosen.get("path"))
    sha256 = chosen.get("hashes", {}).get("sha256")
    return PypiPackage(name, version, url, "wheel" if wheel else "sdist", sha256)


def _check_pins(packages: Sequence[PypiPackage], source: RequirementsInput) -> None:
    allowed: dict[str, set[str]] = {}
    for requirements in source.requirement_files:
        for name, hashes in pinned_hashes(requirements).items():
            allowed.setdefault(name, set()).update(hashes)
    for package in packages:
        pins = allowed.get(canonicalize_name(package.name))
        if pins and (package.sha256 or "").lower() not in pins:
            msg = (
                f"{package.name} {package.version}: the file for the target has sha256 "
                f"{package.sha256}, which the requirements file does not allow"
            )
            raise InputError(msg, hint="add that hash to the requirements file, or re-pin")


def resolve_requirements(
    source: RequirementsInput, python_version: tuple[int, int], subdir: str
) -> tuple[PypiPackage, ...]:
    """The locked PyPI files for the target, from a project's pylock.toml or from uv."""
    project_lock = source.project / "pylock.toml" if source.project else None
    if project_lock is not None and project_lock.is_file() and not source.requirement_files:
        text = project_lock.read_text(encoding="utf-8")
    else:
        text = _compile(source, python_version, subdir)
    order = {tag: i for i, tag in enumerate(ordered_target_tags(python_version, subdir))}
    entries = tomlkit.parse(text).unwrap().get("packages", [])
    packages = tuple(sorted((_package(e, order) for e in entries), key=lambda p: p.name))
    _check_pins(packages, source)
    return packages

"""Requirements for a plain CPython (conda-free source) resolved into locked PyPI files.

uv resolves for the TARGET (the interpreter's version, the platform's manylinux tags) and
exports PEP 751 `pylock.toml`, which names every file with its URL and sha256. A project's own
lock is taken as it is, never re-resolved: its `pylock.toml`, or else its `uv.lock` (exported
to pylock.toml by uv, after checking it still matches pyproject.toml). A lock covers every
platform and Python, so its entries are chosen by their markers for the target. Each package
then gets the best-fitting wheel for the target, or its sdist to build when none fits. Hashes a
requirements file pins (`--hash=sha256:...`) must match the file chosen.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from packaging.markers import InvalidMarker, Marker
from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename

from portenv.errors import InputError, ResolveError
from portenv.model import PypiPackage
from portenv.platforms import SUBDIR_ARCH, marker_environment
from portenv.source.pypi import ordered_target_tags
from portenv.source.uvlock import check_requires_python, export_uv_lock, run_uv

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


_UV_MANYLINUX = (17, 28, *range(31, 41))
"""The glibc 2.x levels uv's --python-platform names (x86_64-manylinux_2_17 ...)."""


def _uv_platform(subdir: str, glibc: str | None = None) -> str:
    """uv's platform for the target: the highest manylinux level ``glibc`` runs (default 2.28).

    >>> _uv_platform("linux-64", "2.30"), _uv_platform("linux-aarch64")
    ('x86_64-manylinux_2_28', 'aarch64-manylinux_2_28')
    """
    minor = int(glibc.split(".")[1]) if glibc else 28
    levels = [level for level in _UV_MANYLINUX if level <= minor]
    if not levels:
        msg = f"--glibc {glibc} is below manylinux 2.17, the oldest level PyPI wheels are built for"
        raise InputError(msg, hint="pass --glibc 2.17 or newer")
    return f"{SUBDIR_ARCH[subdir]}-manylinux_2_{levels[-1]}"


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


def _compile(
    source: RequirementsInput, version: tuple[int, int], subdir: str, glibc: str | None
) -> str:
    """Run uv's resolver for the target and return the pylock.toml text."""
    with tempfile.TemporaryDirectory(prefix="portenv-resolve-") as scratch:
        out = Path(scratch) / "pylock.toml"
        argv = ["pip", "compile", "--quiet", "--no-config", "--format", "pylock.toml"]
        argv += ["--python-version", f"{version[0]}.{version[1]}"]
        argv += ["--python-platform", _uv_platform(subdir, glibc), "-o", str(out), *_inputs(source)]
        done = run_uv(argv)
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


def _locked(
    source: RequirementsInput, version: Sequence[int], interpreter: Path | None
) -> tuple[str, str] | None:
    """The project's own lock as pylock.toml text, and its name; None when it has none."""
    if source.project is None or source.requirement_files:
        return None
    pylock, uv_lock = source.project / "pylock.toml", source.project / "uv.lock"
    if pylock.is_file():
        return pylock.read_text(encoding="utf-8"), str(pylock)
    if uv_lock.is_file():
        _inputs(source)  # the same refusal as without a lock when pyproject.toml is missing
        return export_uv_lock(source.project, version, interpreter), str(uv_lock)
    return None


def _for_target(
    entries: Sequence[dict[str, Any]], environment: Mapping[str, str], where: str, groups: Any
) -> list[dict[str, Any]]:
    """The entries whose marker holds on the target; one version per package."""
    context: dict[str, str | AbstractSet[str]] = {**environment, "extras": frozenset()}
    context["dependency_groups"] = frozenset(groups or ())
    chosen: dict[str, dict[str, Any]] = {}
    for entry in entries:
        marker = entry.get("marker")
        try:
            if marker and not Marker(str(marker)).evaluate(context, context="lock_file"):
                continue
        except InvalidMarker as exc:
            msg = f"{where}: invalid marker for {entry.get('name')}: {marker!r}"
            raise InputError(msg, hint="fix or regenerate the lock file") from exc
        name = canonicalize_name(str(entry["name"]))
        if name in chosen:
            versions = f"{chosen[name].get('version')} and {entry.get('version')}"
            msg = f"{where} has two versions of {entry['name']} for the target: {versions}"
            raise ResolveError(msg, hint="regenerate the lock file")
        chosen[name] = entry
    return list(chosen.values())


def resolve_requirements(
    source: RequirementsInput,
    python_version: Sequence[int],
    subdir: str,
    *,
    interpreter: Path | None = None,
    glibc: str | None = None,
) -> tuple[PypiPackage, ...]:
    """The locked PyPI files for the target, from the project's lock or resolved by uv.

    ``python_version`` is the interpreter's full version (markers may test
    python_full_version); ``interpreter`` is its path, for uv to check a uv.lock with;
    ``glibc`` the target's (``--glibc``): uv resolves wheels of that manylinux level.
    """
    version = (python_version[0], python_version[1])
    locked = _locked(source, python_version, interpreter)
    text, where = locked if locked is not None else (_compile(source, version, subdir, glibc), "uv")
    document = tomlkit.parse(text).unwrap()
    if locked is not None:
        check_requires_python(document.get("requires-python"), python_version, where)
    environment = marker_environment(subdir, ".".join(map(str, python_version)))
    entries = _for_target(
        document.get("packages", []), environment, where, document.get("default-groups")
    )
    order = {tag: i for i, tag in enumerate(ordered_target_tags(version, subdir))}
    packages = tuple(sorted((_package(e, order) for e in entries), key=lambda p: p.name))
    _check_pins(packages, source)
    return packages

"""Requirements for a plain CPython (conda-free source) resolved into locked PyPI files.

uv resolves for the TARGET (the interpreter's version, the platform's manylinux tags) and
exports PEP 751 `pylock.toml`, which names every file with its URL and sha256. A project's own
lock is taken as it is, never re-resolved: its `pylock.toml`, or else its `uv.lock` (exported
to pylock.toml by uv, after checking it still matches pyproject.toml). A lock covers every
platform and Python, so its entries are chosen by their markers for the target. Each package
then gets the best-fitting wheel for the target, or its sdist to build when none fits. Hashes a
requirements file pins (`--hash=sha256:...`, `#sha256=`) must match the file chosen.

The user's own code comes in as local folders, wheel and sdist files, and direct URLs, in
requirements files (paths relative to the file), `--with` lines (relative to the current
folder) or as the `--project` itself (installed from its folder unless told not to).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from packaging.utils import canonicalize_name
from tomlkit.exceptions import TOMLKitError

from portenv._uv import python_platform, run_uv
from portenv.errors import InputError, ResolveError
from portenv.model import PypiPackage
from portenv.platforms import marker_environment
from portenv.source.pylock import LockedFiles, folder_version, for_target, package_of
from portenv.source.pypi import ordered_target_tags
from portenv.source.reqfiles import absolute_requirements, pinned_hashes
from portenv.source.uvlock import check_requires_python, export_uv_lock

__all__ = [
    "RequirementsInput",
    "pinned_hashes",
    "requirement_notes",
    "resolve_requirements",
]


@dataclass(frozen=True)
class RequirementsInput:
    """Where the requirements come from: files, `--with` lines, and/or a Python project folder."""

    requirement_files: tuple[Path, ...] = ()
    project: Path | None = None
    with_requirements: tuple[str, ...] = ()
    """Requirements-file lines given on the command line, relative to the current folder."""
    install_project: bool = True
    """Install the `project` itself (built from its folder), not only its dependencies."""

    @property
    def empty(self) -> bool:
        """Nothing is asked for: the bare interpreter is packed."""
        return not (self.requirement_files or self.with_requirements or self.project)


@dataclass(frozen=True)
class _Project:
    """The `[project]` of a pyproject.toml, as far as packing it needs."""

    folder: Path
    name: str
    packaged: bool
    """It has a build system (uv's rule), so it can be built and installed itself."""


def _project(folder: Path) -> _Project:
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        msg = f"no pyproject.toml in {folder}"
        raise InputError(msg, hint="pass the folder of a Python project, or use -r FILE")
    try:
        document = tomlkit.parse(pyproject.read_text(encoding="utf-8")).unwrap()
    except (OSError, UnicodeDecodeError, TOMLKitError) as exc:
        msg = f"cannot read {pyproject}: {exc}"
        raise InputError(msg, hint="fix the file's syntax") from exc
    table = document.get("project")
    name = str(table.get("name", "")) if isinstance(table, dict) else ""
    uv = document.get("tool", {}).get("uv", {}) if isinstance(document.get("tool"), dict) else {}
    package = uv.get("package") if isinstance(uv, dict) else None
    packaged = package if isinstance(package, bool) else "build-system" in document
    return _Project(folder.resolve(), name or folder.resolve().name, packaged and bool(name))


def _own_project(source: RequirementsInput) -> _Project | None:
    """The project a lock belongs to; None for a folder with a pylock.toml and no pyproject."""
    if source.project is None or not (source.project / "pyproject.toml").is_file():
        return None
    return _project(source.project)


def _installed_project(source: RequirementsInput) -> _Project | None:
    """The project to install from its folder, when there is one and it can be built."""
    if source.project is None or not source.install_project:
        return None
    project = _project(source.project)
    return project if project.packaged else None


def requirement_notes(source: RequirementsInput) -> tuple[str, ...]:
    """One-line notes on what is packed that the user may not expect."""
    if source.empty:
        return ("no requirements given (-r, --with or --project): packing the bare interpreter",)
    project = _own_project(source)
    if project is not None and source.install_project and not project.packaged:
        return (
            f"{project.name} ({project.folder}) has no [build-system], so its dependencies "
            "are packed but not the project itself",
        )
    return ()


@dataclass
class _Resolution:
    """A pylock.toml text, the folder its relative paths start from, and the pins asked for."""

    text: str
    base: Path
    where: str
    pins: dict[str, set[str]] = field(default_factory=dict)
    locked: bool = True


_NETWORK = (
    "dns error",
    "failed to lookup address",
    "error sending request",
    "tcp connect error",
    "connection refused",
    "network is unreachable",
    "operation timed out",
)


def _resolve_failure(stderr: str, python: str) -> ResolveError:
    """uv's failure with the hint that fits it: network, a conflict, a build, or other."""
    text = stderr.strip() or "uv failed without a message"
    lowered = text.lower()
    if any(word in lowered for word in _NETWORK):
        url = re.search(r"Failed to fetch: `?([^`\s]+)`?", text)
        causes = [line.strip() for line in text.splitlines() if line.strip().startswith("cause:")]
        reason = (causes[-1] if causes else text.splitlines()[-1]).removeprefix("cause:").strip()
        where = url.group(1) if url else "the package index"
        msg = f"cannot reach {where} to resolve the requirements for {python}: {reason}"
        hint = "check the network connection, and the index URL if one is given (--index-url)"
        return ResolveError(msg, hint=hint)
    msg = f"cannot resolve the requirements for {python}:\n{text}"
    if "no solution found" in lowered:
        return ResolveError(msg, hint="relax the requirement uv names")
    if "failed to build" in lowered or "failed to prepare" in lowered:
        hint = "fix the build of the local project uv names (its pyproject.toml or setup.py)"
        return ResolveError(msg, hint=hint)
    if "not found at" in lowered or "does not exist" in lowered:
        return ResolveError(msg, hint="a local path uv names does not exist: fix where it is given")
    return ResolveError(msg, hint="fix what uv names above")


def _compile(
    source: RequirementsInput, version: tuple[int, int], subdir: str, glibc: str | None
) -> _Resolution:
    """Run uv's resolver for the target and return the pylock.toml it writes."""
    project = _installed_project(source)
    with tempfile.TemporaryDirectory(prefix="portenv-resolve-") as scratch_name:
        scratch = Path(scratch_name).resolve()
        inputs = absolute_requirements(
            source.requirement_files, source.with_requirements, Path.cwd(), scratch
        )
        files = [str(f) for f in inputs.files]
        if project is not None:
            (scratch / "project.txt").write_text(f"{project.folder}\n", encoding="utf-8")
            files.append(str(scratch / "project.txt"))
        elif source.project is not None:
            files.append(str(_project(source.project).folder / "pyproject.toml"))
        out = scratch / "pylock.toml"
        argv = ["pip", "compile", "--quiet", "--no-config", "--format", "pylock.toml"]
        argv += ["--python-version", f"{version[0]}.{version[1]}"]
        argv += ["--python-platform", python_platform(subdir, glibc), "-o", str(out), *files]
        done = run_uv(argv)
        if done.returncode != 0:
            stderr = done.stderr
            for copy, original in inputs.originals.items():
                stderr = stderr.replace(copy, original)
            raise _resolve_failure(stderr, f"Python {version[0]}.{version[1]}")
        text = out.read_text(encoding="utf-8")
        return _Resolution(text, scratch, "uv", inputs.pins, locked=False)


def _check_pins(packages: Sequence[PypiPackage], allowed: Mapping[str, set[str]]) -> None:
    for package in packages:
        pins = allowed.get(canonicalize_name(package.name))
        if pins and (package.sha256 or "").lower() not in pins:
            msg = (
                f"{package.name} {package.version}: the file for the target has sha256 "
                f"{package.sha256}, which the requirements do not allow"
            )
            raise InputError(msg, hint="add that hash to the requirements, or re-pin")


def _locked(
    source: RequirementsInput, version: Sequence[int], interpreter: Path | None
) -> _Resolution | None:
    """The project's own lock as pylock.toml text; None when it has none or more is asked."""
    if source.project is None or source.requirement_files or source.with_requirements:
        return None
    pylock, uv_lock = source.project / "pylock.toml", source.project / "uv.lock"
    if pylock.is_file():
        return _Resolution(pylock.read_text(encoding="utf-8"), source.project, str(pylock))
    if uv_lock.is_file():
        _project(source.project)  # refused as without a lock when pyproject.toml is missing
        text, base = export_uv_lock(source.project, version, interpreter)
        return _Resolution(text, base, str(uv_lock))
    return None


def _with_project(
    packages: list[PypiPackage], source: RequirementsInput, locked: bool
) -> list[PypiPackage]:
    """A lock's entries with the project itself added, or taken out (--no-install-project)."""
    project = _own_project(source)
    if project is None or not locked:
        return packages
    own = canonicalize_name(project.name)
    others = [p for p in packages if canonicalize_name(p.name) != own]
    if not source.install_project:
        return others
    if not project.packaged or len(others) < len(packages):
        return packages
    version = folder_version(project.folder)
    return [*packages, PypiPackage(project.name, version, str(project.folder), "path", None)]


def _lock_document(resolution: _Resolution, version: Sequence[int]) -> dict[str, Any]:
    document: dict[str, Any] = tomlkit.parse(resolution.text).unwrap()
    if resolution.locked:
        check_requires_python(document.get("requires-python"), version, resolution.where)
    return document


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
    Nothing asked for gives nothing (the bare interpreter), without running uv.
    """
    if source.empty:
        return ()
    version = (python_version[0], python_version[1])
    resolution = _locked(source, python_version, interpreter) or _compile(
        source, version, subdir, glibc
    )
    document = _lock_document(resolution, python_version)
    environment = marker_environment(subdir, ".".join(map(str, python_version)))
    entries = for_target(
        document.get("packages", []), environment, resolution.where, document.get("default-groups")
    )
    files = LockedFiles(
        resolution.base,
        {tag: i for i, tag in enumerate(ordered_target_tags(version, subdir))},
        f"CPython {version[0]}.{version[1]} on {subdir}",
        None if resolution.locked else frozenset(resolution.pins),
    )
    packages = _with_project([package_of(e, files) for e in entries], source, resolution.locked)
    _check_pins(packages, resolution.pins)
    return tuple(sorted(packages, key=lambda p: p.name))

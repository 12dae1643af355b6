"""Does pixi.lock still satisfy the manifest? Each difference names an environment and platform.

The same walk decides what `lock` re-solves (only the stale environment/platform pairs, so
everything else keeps its pins byte for byte) and what `lock --check` reports. Like pixi's
satisfiability check it needs no network: every spec must be met by a locked package,
every locked package must be reachable from the specs, and nothing a locked package
depends on may be missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename

from portenv import _rattler
from portenv.model import CondaPackage
from portenv.project.closure import (
    conda_pypi_names,
    conda_reach,
    conda_unsatisfied,
    marker_environment,
    pypi_reach,
)
from portenv.project.environments import EnvironmentSpec, Platform, environments
from portenv.project.lockfile import LockState, read_state
from portenv.project.manifest import Manifest
from portenv.project.specs import PypiRequirement
from portenv.project.targets import PypiTarget, ordered_tags

__all__ = [
    "Difference",
    "differences",
    "lock_differences",
    "lock_names",
    "lock_state",
    "python_version",
]


@dataclass(frozen=True)
class Difference:
    """One way the lock does not match the manifest."""

    environment: str
    platform: str | None
    """None when the whole environment differs (missing, channels)."""
    message: str

    def __str__(self) -> str:
        where = f"{self.environment}" + (f" [{self.platform}]" if self.platform else "")
        return f"{where}: {self.message}"


def python_version(packages: Sequence[CondaPackage]) -> str | None:
    """The full version of the solved python, which the PyPI half is resolved for."""
    python = next((p for p in packages if p.name == "python"), None)
    return python.version if python else None


def differences(envs: Sequence[EnvironmentSpec], state: LockState | None) -> list[Difference]:
    """Every difference between the manifest's environments and the lock (all, if no lock)."""
    if state is None:
        return [Difference(e.name, None, "the project has no pixi.lock yet") for e in envs]
    found: list[Difference] = []
    for env in envs:
        found += _environment(env, state)
    wanted = {e.name for e in envs}
    found += [
        Difference(name, None, "is in the lock but not in the manifest")
        for name in sorted(state.environments)
        if name not in wanted
    ]
    return found


def _environment(env: EnvironmentSpec, state: LockState) -> list[Difference]:
    locked = state.environments.get(env.name)
    if locked is None:
        return [Difference(env.name, None, "is not in the lock")]
    found: list[Difference] = []
    if _channels(locked.channels) != _channels(env.channels):
        message = f"channels differ: lock {list(locked.channels)}, manifest {list(env.channels)}"
        found.append(Difference(env.name, None, message))
    if any(env.pypi.values()) and state.indexes.get(env.name, env.indexes) != env.indexes:
        message = f"PyPI indexes differ: lock {list(state.indexes.get(env.name, ()))}"
        found.append(Difference(env.name, None, message + f", manifest {list(env.indexes)}"))
    names = lock_names(env.platforms, state)
    for platform in env.platforms:
        problems = _platform(env, platform, names[platform.name], state)
        found += [Difference(env.name, platform.name, m) for m in problems]
    found += [
        Difference(env.name, name, "platform is locked but not in the manifest")
        for name, packages in sorted(locked.conda.items())
        if name not in names.values() and (packages or locked.pypi.get(name))
    ]
    return found


def lock_names(platforms: Sequence[Platform], state: LockState) -> dict[str, str]:
    """Each manifest platform's name in the lock: the same name, else the lock platform with
    the same subdir and virtual packages (pixi may name custom platforms differently)."""
    names = {}
    for platform in platforms:
        found = state.platform(platform.name)
        if found is None:
            found = next(
                (
                    p
                    for p in state.platforms
                    if p.subdir == platform.subdir
                    and sorted(p.virtual_packages) == sorted(platform.virtual_packages)
                ),
                None,
            )
        names[platform.name] = found.name if found else platform.name
    return names


def _channels(channels: Sequence[str]) -> list[str]:
    return [c.rstrip("/") for c in channels]


def _platform(
    env: EnvironmentSpec, platform: Platform, lock_name: str, state: LockState
) -> list[str]:
    locked_platform = state.platform(lock_name)
    content = state.environments[env.name]
    conda = content.conda.get(lock_name, ())
    pypi = content.pypi.get(lock_name, ())
    if locked_platform is None:
        return ["platform is not in the lock"] if env.conda[platform.name] else []
    problems = []
    vps = locked_platform.virtual_packages
    if vps and sorted(vps) != sorted(platform.virtual_packages):
        problems.append(f"virtual packages differ: lock {list(vps)}, manifest")
        problems[-1] += f" {list(platform.virtual_packages)}"
    if content.sources.get(lock_name):
        problems.append("the lock holds source packages, which portenv cannot check or lock")
    problems += _conda(env.conda[platform.name], conda)
    problems += _pypi(env.pypi[platform.name], conda, pypi, platform)
    return problems


def _conda(specs: Sequence[str], packages: Sequence[CondaPackage]) -> list[str]:
    problems = conda_unsatisfied(specs, packages)
    reach = conda_reach(specs, packages)
    problems += [f"a locked package needs {m}, which the lock lacks" for m in reach.missing]
    problems += [
        f"locked {p.name} {p.version} is no longer required"
        for p in packages
        if p.name not in reach.names
    ]
    return problems


def _pypi(
    requirements: Sequence[PypiRequirement],
    conda: Sequence[CondaPackage],
    dists: Sequence[_rattler.PypiEntry],
    platform: Platform,
) -> list[str]:
    if not requirements and not dists:
        return []
    python = python_version(conda)
    if python is None:
        return ["PyPI dependencies need python among the conda dependencies"]
    by_key = {d.key: d for d in dists}
    provided = conda_pypi_names(conda)
    problems = [
        p
        for r in requirements
        if _key(r.name) not in provided and (p := _requirement(r, by_key.get(_key(r.name))))
    ]
    environment = marker_environment(platform.subdir, python)
    requires = {d.key: d.requires_dist for d in dists}
    roots = [(r.name, r.extras) for r in requirements]
    reach = pypi_reach(roots, requires, environment, provided)
    problems += [f"a locked PyPI package needs {m}, which the lock lacks" for m in reach.missing]
    problems += [
        f"locked PyPI package {d.key} {d.version} is no longer required"
        for d in dists
        if d.key not in reach.names
    ]
    problems += [
        f"PyPI package {d.key} is locked, but conda installs it already"
        for d in dists
        if d.key in provided
    ]
    target = PypiTarget(platform, python)
    tags = frozenset(ordered_tags(target))
    problems += [m for d in dists if (m := _fits(d, target, tags))]
    return problems


def _key(name: str) -> str:
    return str(canonicalize_name(name))


def _requirement(requirement: PypiRequirement, dist: _rattler.PypiEntry | None) -> str | None:
    if dist is None:
        return f"PyPI requirement {requirement.pep508} is not in the lock"
    if requirement.location is not None:
        if dist.location.split("#", 1)[0] != requirement.location.split("#", 1)[0]:
            wanted = requirement.location
            return f"PyPI {requirement.name} is locked from {dist.location}, not {wanted}"
        return None
    try:
        specifier = SpecifierSet(requirement.specifier)
    except InvalidSpecifier:
        return f"PyPI requirement {requirement.pep508} has an invalid version"
    if not specifier.contains(dist.version, prereleases=True):
        return f"PyPI requirement {requirement.pep508} is not satisfied by locked {dist.version}"
    return None


def _fits(dist: _rattler.PypiEntry, target: PypiTarget, tags: frozenset[Tag]) -> str | None:
    """A locked wheel must still fit the solved python; requires_python must accept it."""
    python = target.python_version
    if dist.requires_python:
        try:
            if not SpecifierSet(dist.requires_python).contains(python, prereleases=True):
                return f"locked {dist.key} requires python {dist.requires_python}, not {python}"
        except InvalidSpecifier:
            pass
    file_name = dist.location.split("#", 1)[0].rsplit("/", 1)[-1]
    if not file_name.endswith(".whl"):
        return None
    if parse_wheel_filename(file_name)[3].isdisjoint(tags):
        return f"locked wheel {file_name} does not fit CPython {python} on {target.platform.name}"
    return None


def lock_state(manifest: Manifest) -> LockState | None:
    """The project's pixi.lock as read, or None when it has none yet."""
    path = manifest.root / "pixi.lock"
    return read_state(path) if path.is_file() else None


def lock_differences(project: Path) -> tuple[str, ...]:
    """What makes a project's lock stale (empty when it satisfies the manifest); no network."""
    manifest = Manifest.from_path(project)
    return tuple(str(d) for d in differences(environments(manifest), lock_state(manifest)))

"""Re-solve the stale parts of a lock: conda with py-rattler, then PyPI with uv, per platform.

Only environment/platform pairs that no longer satisfy the manifest are solved again, and
their old packages are passed as preferences (rattler's ``locked_packages``, uv's existing
pylock.toml), so a change to one dependency leaves the other pins alone. Environments of
one solve group are solved together and each keeps the part of the solution it reaches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from portenv import _rattler
from portenv.author.pypi import PypiDist, resolve
from portenv.errors import ResolveError
from portenv.model import CondaPackage
from portenv.project.check import Difference, lock_names, python_version
from portenv.project.closure import (
    conda_pypi_names,
    conda_reach,
    marker_environment,
    pypi_reach,
)
from portenv.project.environments import EnvironmentSpec, Platform, solver_channel
from portenv.project.lockfile import LockState
from portenv.project.targets import PypiTarget
from portenv.reporting import NullReporter, Reporter

__all__ = ["SolveContext", "relock"]

_Key = tuple[str, str]
"""(environment, platform name)."""


@dataclass(frozen=True)
class SolveContext:
    """What every solve needs besides the specs."""

    root: Path
    cache: Path
    reporter: Reporter = field(default_factory=NullReporter)


@dataclass(frozen=True)
class _Solution:
    conda: tuple[CondaPackage, ...]
    pypi: tuple[PypiDist, ...]


def relock(
    envs: Sequence[EnvironmentSpec],
    old: LockState | None,
    stale: Sequence[Difference],
    context: SolveContext,
) -> LockState:
    """A lock for `envs`: stale pairs solved again, the rest copied from `old`."""
    stale_keys = {(d.environment, d.platform) for d in stale}
    solved: dict[_Key, _Solution] = {}
    for group in _groups(envs):
        for platform in _platforms(group):
            members = [e for e in group if platform in e.platforms]
            if old is None or any(_is_stale(e.name, platform, stale_keys) for e in members):
                solved.update(_solve_group(members, platform, old, context))
            else:
                kept = {(e.name, platform.name): _old(e.name, platform, old) for e in members}
                solved.update(kept)
    return _state(envs, solved)


def _is_stale(env: str, platform: Platform, keys: set[tuple[str, str | None]]) -> bool:
    return (env, None) in keys or (env, platform.name) in keys


def _groups(envs: Sequence[EnvironmentSpec]) -> list[list[EnvironmentSpec]]:
    groups: dict[str, list[EnvironmentSpec]] = {}
    for env in envs:
        groups.setdefault(env.solve_group or f"\0{env.name}", []).append(env)
    return list(groups.values())


def _platforms(group: Sequence[EnvironmentSpec]) -> list[Platform]:
    return list(dict.fromkeys(p for env in group for p in env.platforms))


def _old(env: str, platform: Platform, old: LockState | None) -> _Solution:
    if old is None or env not in old.environments:
        return _Solution((), ())
    content = old.environments[env]
    name = lock_names([platform], old)[platform.name]
    return _Solution(content.conda.get(name, ()), content.pypi.get(name, ()))


def _solve_group(
    members: Sequence[EnvironmentSpec],
    platform: Platform,
    old: LockState | None,
    context: SolveContext,
) -> dict[_Key, _Solution]:
    specs = list(dict.fromkeys(s for e in members for s in e.conda[platform.name]))
    if not specs and not any(e.pypi[platform.name] for e in members):
        return {(e.name, platform.name): _Solution((), ()) for e in members}
    previous = [_old(e.name, platform, old) for e in members]
    channels = list(dict.fromkeys(c for e in members for c in e.channels))
    label = f"solving {', '.join(e.name for e in members)} for {platform.name}"
    token = context.reporter.on_task_start(label, None)
    conda = (
        _rattler.solve(
            [solver_channel(c, context.root) for c in channels],
            specs,
            subdir=platform.subdir,
            virtual_packages=platform.virtual_packages,
            locked=_unique(p for s in previous for p in s.conda),
        )
        if specs
        else ()
    )
    pypi = _solve_pypi(members, platform, conda, previous, context)
    context.reporter.on_task_complete(token)
    return {(e.name, platform.name): _subset(e, platform, conda, pypi) for e in members}


def _unique(packages: Iterable[CondaPackage]) -> list[CondaPackage]:
    found: dict[str, CondaPackage] = {}
    for package in packages:
        found.setdefault(package.name, package)
    return list(found.values())


def _solve_pypi(
    members: Sequence[EnvironmentSpec],
    platform: Platform,
    conda: Sequence[CondaPackage],
    previous: Sequence[_Solution],
    context: SolveContext,
) -> tuple[PypiDist, ...]:
    requirements = [r for e in members for r in e.pypi[platform.name]]
    if not requirements:
        return ()
    python = python_version(conda)
    if python is None:
        msg = f"PyPI dependencies need python among the conda dependencies ({platform.name})"
        raise ResolveError(msg, hint="add python, e.g. `portenv add python=3.12`")
    preferences = {d.key: d for s in previous for d in s.pypi}
    return resolve(
        requirements,
        PypiTarget(platform, python),
        indexes=members[0].indexes,
        cache=context.cache,
        preferences=list(preferences.values()),
        provided=conda_pypi_names(conda),
    )


def _subset(
    env: EnvironmentSpec,
    platform: Platform,
    conda: Sequence[CondaPackage],
    pypi: Sequence[PypiDist],
) -> _Solution:
    """The part of a group's solution one environment reaches from its own specs."""
    reach = conda_reach(env.conda[platform.name], conda).names
    kept_conda = tuple(p for p in conda if p.name in reach)
    python = python_version(kept_conda)
    if not pypi or python is None:
        return _Solution(kept_conda, ())
    roots = [(r.name, r.extras) for r in env.pypi[platform.name]]
    requires = {d.key: d.requires_dist for d in pypi}
    environment = marker_environment(platform.subdir, python)
    names = pypi_reach(roots, requires, environment, conda_pypi_names(kept_conda)).names
    return _Solution(kept_conda, tuple(d for d in pypi if d.key in names))


def _state(envs: Sequence[EnvironmentSpec], solved: dict[_Key, _Solution]) -> LockState:
    platforms = {p.name: p for env in envs for p in env.platforms}
    environments = {}
    indexes = {}
    for env in envs:
        names = [p.name for p in env.platforms]
        environments[env.name] = _rattler.LockedEnvironmentContent(
            channels=env.channels,
            conda={n: solved[(env.name, n)].conda for n in names},
            pypi={n: solved[(env.name, n)].pypi for n in names},
            sources={},
        )
        if any(solved[(env.name, n)].pypi for n in names):
            indexes[env.name] = env.indexes
    return LockState(
        tuple(platforms.values()),
        environments,
        indexes,
    )

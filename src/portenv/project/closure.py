"""Which locked packages a set of requirements reaches, for conda and for PyPI.

Both `lock --check` (is every locked package still needed, is every dependency there?) and
solve groups (each environment takes the part of the group's solution it needs) walk the
same graph: conda records through ``depends``, PyPI packages through ``requires_dist``
with markers evaluated for the target platform and Python.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from portenv import _rattler
from portenv.model import CondaPackage
from portenv.platforms import marker_environment

__all__ = [
    "Reach",
    "conda_pypi_names",
    "conda_reach",
    "marker_environment",
    "pypi_reach",
    "spec_name",
]

_NAME = re.compile(r"^\s*(?:[^:\s]+::)?([A-Za-z0-9_.+\-]+)")


@dataclass(frozen=True)
class Reach:
    """The packages requirements reach, and the dependencies nothing locked provides."""

    names: frozenset[str]
    missing: tuple[str, ...]


def spec_name(spec: str) -> str:
    """The package name of a conda MatchSpec or depends entry (``python >=3.8`` -> python)."""
    match = _NAME.match(spec)
    return match.group(1).lower() if match else spec.strip().lower()


def conda_reach(specs: Iterable[str], packages: Sequence[CondaPackage]) -> Reach:
    """Follow ``depends`` from `specs` through `packages` (virtual ``__`` packages skipped)."""
    by_name = {p.name: p for p in packages}
    seen: set[str] = set()
    missing: list[str] = []
    queue = [(spec_name(s), "the manifest") for s in specs]
    while queue:
        name, wanted_by = queue.pop()
        if name in seen or name.startswith("__"):
            continue
        package = by_name.get(name)
        if package is None:
            missing.append(f"{name} (needed by {wanted_by})")
            continue
        seen.add(name)
        queue += [(spec_name(d), name) for d in package.depends]
    return Reach(frozenset(seen), tuple(sorted(set(missing))))


def conda_pypi_names(packages: Iterable[CondaPackage]) -> dict[str, str]:
    """Python distributions the conda packages already install: normalised name -> version.

    pixi maps them with purls; py-rattler 0.28 does not expose purls, so a conda package
    that depends on python counts as the PyPI project of the same name (true for most of
    conda-forge: requests, numpy, idna...). uv must not install them a second time.
    """
    found: dict[str, str] = {}
    for package in packages:
        if package.name != "python" and any(spec_name(d) == "python" for d in package.depends):
            try:
                found[canonicalize_name(package.name)] = str(Version(package.version))
            except InvalidVersion:
                continue
    return found


def conda_unsatisfied(specs: Iterable[str], packages: Sequence[CondaPackage]) -> list[str]:
    """The specs no locked package satisfies, each with what the lock has instead."""
    problems = []
    for spec in specs:
        name = spec_name(spec)
        candidates = [p for p in packages if p.name == name]
        if not candidates:
            problems.append(f"{spec} is not in the lock")
        elif not any(_rattler.spec_matches(spec, p) for p in candidates):
            have = ", ".join(f"{p.name} {p.version} {p.build}" for p in candidates)
            problems.append(f"{spec} is not satisfied by the locked {have}")
    return problems


def _applies(requirement: Requirement, environment: Mapping[str, str], extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    marker: Marker = requirement.marker
    return any(marker.evaluate({**environment, "extra": e}) for e in (extras or {""}))


def pypi_reach(
    roots: Iterable[tuple[str, Iterable[str]]],
    requires: Mapping[str, Sequence[str]],
    environment: Mapping[str, str],
    provided: Iterable[str] = (),
) -> Reach:
    """Follow ``requires_dist`` from (name, extras) roots; `provided` names need no entry."""
    given = {canonicalize_name(n) for n in provided}
    seen: dict[str, set[str]] = {}
    missing: list[str] = []
    queue: list[tuple[str, set[str], str]] = [
        (canonicalize_name(name), set(extras), "the manifest") for name, extras in roots
    ]
    while queue:
        name, extras, wanted_by = queue.pop()
        if name in given:
            continue
        if name not in requires:
            missing.append(f"{name} (needed by {wanted_by})")
            continue
        if name in seen and extras <= seen[name]:
            continue
        seen[name] = seen.get(name, set()) | extras
        queue += _requirements_of(name, requires[name], environment, extras)
    return Reach(frozenset(seen), tuple(sorted(set(missing))))


def _requirements_of(
    name: str, lines: Sequence[str], environment: Mapping[str, str], extras: set[str]
) -> list[tuple[str, set[str], str]]:
    found: list[tuple[str, set[str], str]] = []
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if _applies(requirement, environment, extras):
            found.append((canonicalize_name(requirement.name), set(requirement.extras), name))
    return found

"""What a manifest means: its environments, each with channels, platforms and specs per platform.

pixi composes an environment from the default feature and the features it lists;
dependencies of the same name from several features all apply (the solver intersects
them), a target table overrides its feature's entry for matching platforms, platforms are
intersected, and `[system-requirements]` become the virtual packages the lock records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portenv._rattler import LockedPlatform
from portenv.errors import ManifestError
from portenv.project.manifest import Manifest
from portenv.project.specs import (
    PypiRequirement,
    conda_matchspec,
    parse_pypi,
    pypi_requirement,
)

__all__ = [
    "DEFAULT_CHANNEL",
    "DEFAULT_INDEX",
    "EnvironmentSpec",
    "Platform",
    "channel_url",
    "environments",
    "solver_channel",
    "virtual_packages",
]

DEFAULT_CHANNEL = "conda-forge"
DEFAULT_INDEX = "https://pypi.org/simple"
_CHANNEL_BASE = "https://conda.anaconda.org/"
#: pixi's defaults when [system-requirements] says nothing (pixi docs, pixi.lock v7).
_DEFAULTS = {"linux": "4.18", "libc": "2.28", "macos": "13.0", "win": "10.0"}
_ARCHSPEC = {"64": "x86_64", "arm64": "m1", "aarch64": "aarch64", "ppc64le": "ppc64le"}
_FAMILIES = {"linux": ("linux",), "osx": ("osx",), "win": ("win",), "unix": ("linux", "osx")}


Platform = LockedPlatform
"""A platform of the workspace: its lock name, conda subdir and virtual packages (as locked)."""


@dataclass(frozen=True)
class EnvironmentSpec:
    """One environment as the manifest defines it."""

    name: str
    features: tuple[str, ...]
    solve_group: str | None
    channels: tuple[str, ...]
    """As the lock records them (names become conda.anaconda.org URLs)."""
    platforms: tuple[Platform, ...]
    conda: dict[str, tuple[str, ...]]
    """Platform name -> MatchSpecs."""
    pypi: dict[str, tuple[PypiRequirement, ...]]
    """Platform name -> PyPI requirements."""
    indexes: tuple[str, ...]


def channel_url(channel: str, root: Path) -> str:
    """The channel as a lock names it: names on conda.anaconda.org, paths as file URLs.

    A relative path stays relative, so a project folder with its channel can move.
    """
    if "://" in channel:
        return channel
    if channel.startswith(("./", "../")):
        return channel
    if channel.startswith(("/", "~")):
        return Path(channel).expanduser().resolve().as_uri()
    return f"{_CHANNEL_BASE}{channel}/"


def solver_channel(lock_channel: str, root: Path) -> str:
    """A channel URL the solver can open (relative paths resolved against the workspace)."""
    if lock_channel.startswith(("./", "../")):
        return (root / lock_channel).resolve().as_uri()
    return lock_channel


def _channel_names(entries: Iterable[Any]) -> list[str]:
    names = []
    for entry in entries:
        if isinstance(entry, Mapping) and "channel" not in entry:
            msg = f"a channel table has no channel key: {dict(entry)!r}"[:200]
            raise ManifestError(msg, hint='write it as { channel = "NAME", priority = N }')
        names.append(str(entry["channel"]) if isinstance(entry, Mapping) else str(entry))
    return names


def _requirements(data: Mapping[str, Any]) -> dict[str, str]:
    """A [system-requirements] table as key -> version (libc tables give their version)."""
    found: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            found[key] = str(value.get("version", ""))
        else:
            found[key] = str(value)
    return found


def virtual_packages(subdir: str, requirements: Mapping[str, str]) -> tuple[str, ...]:
    """The virtual packages pixi assumes for a platform, in the order pixi.lock v7 lists them."""
    family, _, arch = subdir.partition("-")
    found = [f"__cuda={requirements['cuda']}"] if requirements.get("cuda") else []
    merged = {**_DEFAULTS, **requirements}
    if family == "linux":
        found += ["__unix=0=0", f"__linux={merged['linux']}", f"__glibc={merged['libc']}"]
    elif family == "osx":
        found += ["__unix=0=0", f"__osx={merged['macos']}"]
    elif family == "win":
        found += [f"__win={merged['win']}"]
    found.append(f"__archspec=0={_ARCHSPEC.get(arch, arch)}")
    return tuple(found)


def _platforms(manifest: Manifest, requirements: Mapping[str, str]) -> list[Platform]:
    entries = manifest.workspace().get("platforms", [])
    platforms = []
    for entry in entries:
        if isinstance(entry, Mapping):
            subdir = str(entry.get("platform", ""))
            name = str(entry.get("name", subdir))
            extra = {k: str(v) for k, v in entry.items() if k not in ("name", "platform")}
            merged = {**requirements, **extra}
        else:
            subdir = name = str(entry)
            merged = dict(requirements)
        platforms.append(Platform(name, subdir, virtual_packages(subdir, merged)))
    if not platforms:
        msg = f"{manifest.path} lists no platforms"
        raise ManifestError(msg, hint='add platforms = ["linux-64"] to [workspace]')
    return platforms


def _selects(selector: str, platform: Platform) -> bool:
    family = platform.subdir.partition("-")[0]
    return selector in (platform.name, platform.subdir) or family in _FAMILIES.get(selector, ())


def _feature(manifest: Manifest, name: str | None) -> dict[str, Any]:
    data = manifest.data()
    if name is None:
        return data
    features: dict[str, Any] = data.get("feature", {})
    if name not in features:
        msg = f"environment uses feature {name!r}, which the manifest does not define"
        raise ManifestError(msg, hint=f"add a [feature.{name}] table or remove it from the env")
    found: dict[str, Any] = features[name]
    return found


def _table_for(feature: Mapping[str, Any], key: str, platform: Platform) -> dict[str, Any]:
    """A feature's table for one platform: target tables override the general one."""
    merged = dict(feature.get(key, {}))
    for selector, target in feature.get("target", {}).items():
        if _selects(str(selector), platform):
            merged.update(target.get(key, {}))
    return merged


def _conda_specs(tables: Sequence[Mapping[str, Any]], platform: Platform) -> tuple[str, ...]:
    specs: list[str] = []
    for feature in tables:
        for key in ("dependencies", "host-dependencies", "build-dependencies"):
            for name, value in _table_for(feature, key, platform).items():
                spec = conda_matchspec(str(name), value)
                if spec not in specs:
                    specs.append(spec)
    return tuple(specs)


def _pypi_requirements(
    manifest: Manifest, features: list[str | None], platform: Platform
) -> tuple[PypiRequirement, ...]:
    found: list[PypiRequirement] = []
    if None in features:
        found += _project_requirements(manifest, manifest.project_table().get("dependencies", []))
    optional = manifest.project_table().get("optional-dependencies", {})
    for feature_name in features:
        if feature_name is not None and feature_name in optional:
            found += _project_requirements(manifest, optional[feature_name])
        table = _table_for(_feature(manifest, feature_name), "pypi-dependencies", platform)
        found += [pypi_requirement(str(n), v, manifest.root) for n, v in table.items()]
    return tuple(found)


def _project_requirements(manifest: Manifest, lines: Iterable[str]) -> list[PypiRequirement]:
    found = []
    for line in lines:
        requirement = parse_pypi(str(line))
        value: Any = str(requirement.specifier) or "*"
        if requirement.url or requirement.extras:
            value = {"version": value, "extras": sorted(requirement.extras)}
            if requirement.url:
                value = {"url": requirement.url, "extras": sorted(requirement.extras)}
        found.append(pypi_requirement(requirement.name, value, manifest.root))
    return found


def _environment_table(manifest: Manifest) -> dict[str, dict[str, Any]]:
    """[environments] normalised to tables; `default` always exists."""
    found: dict[str, dict[str, Any]] = {}
    for name, value in manifest.data().get("environments", {}).items():
        found[str(name)] = {"features": list(value)} if isinstance(value, list) else dict(value)
    found.setdefault("default", {"features": []})
    return found


def _python_from_requires_python(manifest: Manifest) -> dict[str, Any]:
    """pixi adds ``python`` from a pyproject's requires-python unless the manifest has it."""
    requires = manifest.project_table().get("requires-python")
    deps = manifest.data().get("dependencies", {})
    if requires and "python" not in deps:
        return {"dependencies": {"python": str(requires).replace(" ", "")}}
    return {}


def environments(manifest: Manifest) -> list[EnvironmentSpec]:
    """Every environment of the manifest, resolved per platform."""
    data = manifest.data()
    found = []
    for name, table in _environment_table(manifest).items():
        listed: list[str | None] = [str(f) for f in table.get("features", [])]
        features = listed if table.get("no-default-feature") else [*listed, None]
        found.append(_environment(manifest, data, name, features, table.get("solve-group")))
    return found


def _environment(
    manifest: Manifest,
    data: Mapping[str, Any],
    name: str,
    features: list[str | None],
    solve_group: str | None,
) -> EnvironmentSpec:
    tables = [_feature(manifest, f) for f in features]
    if None in features:
        tables.append(_python_from_requires_python(manifest))
    channels = [c for t in tables for c in _channel_names(t.get("channels", []))]
    channels += _channel_names(manifest.workspace().get("channels", []))
    lock_channels = tuple(dict.fromkeys(channel_url(c, manifest.root) for c in channels))
    requirements: dict[str, str] = {}
    for table in reversed(tables):
        requirements.update(_requirements(table.get("system-requirements", {})))
    platforms = _platforms(manifest, requirements)
    for table in tables:
        if "platforms" in table and table is not data:
            allowed = {str(p) for p in table["platforms"]}
            platforms = [p for p in platforms if p.name in allowed or p.subdir in allowed]
    options = data.get("pypi-options", {})
    indexes = (str(options.get("index-url", DEFAULT_INDEX)), *options.get("extra-index-urls", []))
    return EnvironmentSpec(
        name=name,
        features=tuple(f for f in features if f is not None),
        solve_group=str(solve_group) if solve_group else None,
        channels=lock_channels,
        platforms=tuple(platforms),
        conda={p.name: _conda_specs(tables, p) for p in platforms},
        pypi={p.name: _pypi_requirements(manifest, features, p) for p in platforms},
        indexes=tuple(str(i) for i in indexes),
    )

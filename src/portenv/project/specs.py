"""Dependency specs in their three spellings: the command line, the manifest, the resolvers.

pixi stores ``python = "3.12.*"`` or ``{ version = ..., build = ... }`` for conda and
``requests = ">=2"`` or ``{ path = ... }`` for PyPI; the solver wants MatchSpecs and uv wants
PEP 508 lines. Bare names that `add` receives are pinned the way pixi pins them (its
default "semver" strategy: ``>=1.41.1,<2``, ``>=0.26.0,<0.27``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from tomlkit.items import InlineTable

from portenv import _rattler
from portenv.errors import InputError, ManifestError

__all__ = [
    "PypiRequirement",
    "conda_matchspec",
    "conda_pin",
    "conda_value",
    "inline_table",
    "parse_pypi",
    "pypi_pin",
    "pypi_requirement",
    "pypi_value",
]

_PYPI_HINT = "write it as NAME, NAME>=VERSION, NAME[extra] or 'NAME @ URL'"


def inline_table(fields: Mapping[str, Any]) -> InlineTable:
    """An inline table spaced as pixi writes one: ``{ version = "1", build = "*_0" }``."""
    body = ", ".join(f"{key} = {tomlkit.item(value).as_string()}" for key, value in fields.items())
    table = tomlkit.parse(f"x = {{ {body} }}\n")["x"]
    assert isinstance(table, InlineTable)
    return table


def conda_value(parts: _rattler.SpecParts) -> str | InlineTable:
    """How pixi writes a conda spec: a version string, or a table when more is pinned."""
    version = parts.version or "*"
    if parts.build is None and parts.channel is None:
        return version
    fields = {"version": version}
    if parts.build is not None:
        fields["build"] = parts.build
    if parts.channel is not None:
        fields["channel"] = parts.channel
    return inline_table(fields)


def conda_matchspec(name: str, value: Any) -> str:
    """The MatchSpec the solver gets for one manifest entry."""
    if isinstance(value, str):
        return name if value.strip() in ("", "*") else f"{name} {value.strip()}"
    if not isinstance(value, Mapping):
        msg = f"conda dependency {name} has an unreadable spec: {value!r}"
        raise ManifestError(msg, hint='write it as name = "VERSION" or a { version = ... } table')
    if any(key in value for key in ("path", "git", "url")) and "version" not in value:
        msg = f"conda dependency {name} is built from source (path/git/url), which portenv cannot"
        raise ManifestError(msg, hint="depend on a built package from a channel instead")
    version = str(value.get("version", "*")).strip() or "*"
    spec = f"{name} {version}"
    if "build" in value:
        spec += f" {value['build']}"
    if "channel" in value:
        spec = f"{value['channel']}::{spec}"
    return spec


def _next_bound(release: list[int]) -> str | None:
    if not release:
        return None
    if release[0] > 0:
        return str(release[0] + 1)
    if len(release) > 1:
        return f"0.{release[1] + 1}"
    return None


def _numeric_prefix(version: str) -> list[int]:
    release: list[int] = []
    for part in version.split("."):
        if not part.isdigit():
            break
        release.append(int(part))
    return release


def conda_pin(versions: Iterable[str]) -> str:
    """pixi's semver pin for the lowest solved version: ``>=1.41.1,<2``."""
    lowest = min(versions, key=_numeric_prefix)
    upper = _next_bound(_numeric_prefix(lowest))
    return f">={lowest},<{upper}" if upper else f">={lowest}"


def pypi_pin(versions: Iterable[str]) -> str:
    """pixi's semver pin for PyPI, in PEP 440 spelling: ``>=13.7.1, <14``."""
    parsed = []
    for text in versions:
        try:
            parsed.append(Version(text))
        except InvalidVersion:
            continue
    if not parsed:
        return "*"
    lowest = min(parsed)
    upper = _next_bound(list(lowest.release))
    return f">={lowest}, <{upper}" if upper else f">={lowest}"


@dataclass(frozen=True)
class PypiRequirement:
    """One PyPI dependency of an environment, for uv and for checking the lock."""

    name: str
    pep508: str
    """What uv resolves: ``requests>=2`` or ``pkg @ file:///abs/pkg.whl``."""
    specifier: str = ""
    extras: tuple[str, ...] = ()
    location: str | None = None
    """For path and URL dependencies: the location the lock records."""
    editable: bool = False


def parse_pypi(text: str) -> Requirement:
    """A PEP 508 requirement from the command line."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        msg = f"invalid PyPI requirement {text!r}: {exc}"
        raise InputError(msg, hint=_PYPI_HINT) from exc
    if requirement.marker is not None:
        msg = f"environment markers are not supported in pixi manifests: {text!r}"
        raise InputError(msg, hint="add the dependency for a platform with -p instead")
    return requirement


def pypi_value(requirement: Requirement, root: Path) -> str | InlineTable:
    """How pixi writes a PyPI dependency: a specifier string, or a table."""
    extras = sorted(requirement.extras)
    if not requirement.url and not extras:
        return str(requirement.specifier) or "*"
    fields: dict[str, Any] = {}
    if requirement.url:
        fields.update(_url_fields(requirement.url, root))
    else:
        fields["version"] = str(requirement.specifier) or "*"
    if extras:
        fields["extras"] = extras
    return inline_table(fields)


def _url_fields(url: str, root: Path) -> dict[str, str]:
    if url.startswith("git+"):
        repository, _, rev = url.removeprefix("git+").rpartition("@")
        if "/" in rev or not repository:  # the @ was part of the URL, not a revision
            return {"git": url.removeprefix("git+")}
        return {"git": repository, "rev": rev}
    if url.startswith("file:"):
        return {"path": _relative_if_inside(Path(url2pathname(urlparse(url).path)), root)}
    return {"url": url}


def _relative_if_inside(path: Path, root: Path) -> str:
    try:
        return "./" + path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def pypi_requirement(name: str, value: Any, root: Path) -> PypiRequirement:
    """What a manifest's PyPI entry asks uv for, and what the lock must then record."""
    if isinstance(value, str):
        return _versioned(name, value, ())
    if not isinstance(value, Mapping):
        msg = f"PyPI dependency {name} has an unreadable spec: {value!r}"
        raise ManifestError(msg, hint='write it as name = ">=VERSION" or a { ... } table')
    extras = tuple(sorted(str(e) for e in value.get("extras", ())))
    spelled = f"{name}[{','.join(extras)}]" if extras else name
    if "path" in value:
        path = (root / str(value["path"])).resolve()
        location = _relative_if_inside(path, root)
        editable = bool(value.get("editable", False))
        return PypiRequirement(name, f"{spelled} @ {path.as_uri()}", "", extras, location, editable)
    if "url" in value:
        url = str(value["url"])
        return PypiRequirement(name, f"{spelled} @ {url}", "", extras, url)
    if "git" in value:
        rev = value.get("rev") or value.get("tag") or value.get("branch")
        url = f"git+{value['git']}" + (f"@{rev}" if rev else "")
        return PypiRequirement(name, f"{spelled} @ {url}", "", extras, url)
    return _versioned(name, str(value.get("version", "*")), extras)


def _versioned(name: str, version: str, extras: tuple[str, ...]) -> PypiRequirement:
    specifier = "" if version.strip() in ("", "*") else version.strip()
    try:
        SpecifierSet(specifier)
    except InvalidSpecifier as exc:
        msg = f"PyPI dependency {name} has an invalid version {version!r}: {exc}"
        raise ManifestError(msg, hint='use a PEP 440 specifier such as ">=2,<3"') from exc
    spelled = f"{name}[{','.join(extras)}]" if extras else name
    return PypiRequirement(name, spelled + specifier, specifier, extras)

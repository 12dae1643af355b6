"""Conda specs: parsing, matching and solving them with rattler's solver."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rattler

from portenv._rattler.records import conda_package_of
from portenv.errors import FetchError, InputError, PortenvError, ResolveError
from portenv.model import CondaPackage

__all__ = ["SpecParts", "parse_spec", "solve", "spec_matches"]


_SPEC_HINT = "write it as NAME, NAME=VERSION or 'NAME VERSION BUILD'"


@dataclass(frozen=True)
class SpecParts:
    """The parts of a conda MatchSpec that a manifest stores separately."""

    name: str
    version: str | None
    build: str | None
    channel: str | None


def parse_spec(spec: str) -> SpecParts:
    """Split a conda MatchSpec (``python=3.12``, ``openssl 3.3.1 *_0``) as pixi stores it."""
    try:
        match = rattler.MatchSpec(spec)
    except Exception as exc:
        msg = f"invalid conda package spec {spec!r}: {exc}"
        raise InputError(msg, hint=_SPEC_HINT) from exc
    if match.name is None:
        msg = f"conda package spec {spec!r} names no package"
        raise InputError(msg, hint=_SPEC_HINT)
    channel = match.channel.name if match.channel is not None else None
    version = str(match.version) if match.version is not None else None
    build = str(match.build) if match.build is not None else None
    return SpecParts(match.name.normalized, version, build, channel)


def spec_matches(spec: str, package: CondaPackage) -> bool:
    """Whether a locked package satisfies a conda MatchSpec (name, version, build).

    A package without its rattler record (built by hand) is matched on its own fields.
    """
    record = package.record
    if record is None:
        build = rattler.BuildString(package.build)
        record = rattler.PackageRecord(package.name, package.version, build, 0, package.subdir)
    matched: bool = rattler.MatchSpec(spec, strict=False).matches(record)
    return matched


def _virtual_package(text: str) -> Any:
    """``__glibc=2.28`` or ``__archspec=0=x86_64`` as the solver's GenericVirtualPackage."""
    name, _, rest = text.partition("=")
    version, _, build = rest.partition("=")
    return rattler.GenericVirtualPackage(
        rattler.PackageName(name),
        rattler.Version(version or "0"),
        rattler.BuildString(build or "0"),
    )


def solve(
    channels: Sequence[str],
    specs: Sequence[str],
    *,
    subdir: str,
    virtual_packages: Sequence[str],
    locked: Sequence[CondaPackage] = (),
) -> tuple[CondaPackage, ...]:
    """Solve `specs` for one platform; `locked` packages are preferred when still valid.

    A new Gateway per call: a reused one keeps stale repodata (FIELD-NOTES).
    """
    try:
        records = asyncio.run(
            rattler.solve(
                list(channels),
                list(specs),
                gateway=rattler.Gateway(),
                platforms=[rattler.Subdir(subdir), rattler.Subdir("noarch")],
                locked_packages=[p.record for p in locked if p.record is not None],
                virtual_packages=[_virtual_package(v) for v in virtual_packages],
            )
        )
    except Exception as exc:
        raise _solve_error(exc, specs, subdir) from exc
    return tuple(sorted((conda_package_of(r) for r in records), key=lambda p: p.name))


def _solve_error(exc: Exception, specs: Sequence[str], subdir: str) -> PortenvError:
    text = str(exc).strip() or type(exc).__name__
    if type(exc).__name__ == "SolverError":
        msg = f"cannot solve {', '.join(specs)} for {subdir}:\n{text}"
        return ResolveError(msg, hint="relax or remove the spec the explanation names")
    if type(exc).__name__ in ("InvalidMatchSpecError", "InvalidVersionSpecError"):
        msg = f"invalid package spec: {text}"
        return InputError(msg, hint=_SPEC_HINT)
    msg = f"cannot read the channels for {subdir}: {text.splitlines()[0]}"
    return FetchError(msg, hint="check the channel URLs in the manifest and your network")

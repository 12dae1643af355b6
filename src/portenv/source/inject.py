"""Local conda packages added to a locked environment: they must fit what the lock holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from portenv import _rattler
from portenv.errors import InputError
from portenv.model import CondaPackage, Plan

__all__ = ["inject"]

_HINT = "rebuild the package against the locked versions, or lock versions that satisfy it"


def _unmet(package: CondaPackage, available: Sequence[CondaPackage]) -> list[str]:
    """The dependencies of `package` no available package satisfies (virtual ones excepted).

    Virtual packages (``__glibc``...) are the target's, checked when it unpacks.
    """
    unmet = []
    for spec in package.depends:
        name = _rattler.parse_spec(spec).name
        if name.startswith("__"):
            continue
        if not any(p.name == name and _rattler.spec_matches(spec, p) for p in available):
            locked = [f"{p.name} {p.version}" for p in available if p.name == name]
            unmet.append(f"{spec} (locked: {', '.join(locked) or 'none'})")
    return unmet


def inject(the_plan: Plan, files: Sequence[Path]) -> Plan:
    """The plan with the package files added, after checking them against the locked records.

    Works from the lock alone (nothing is downloaded): each file must be built for the plan's
    subdir or noarch, must not replace a locked package, and every dependency must be
    satisfied by a locked or another injected package.
    """
    added = [_rattler.read_package_file(path) for path in files]
    locked = {p.name for p in the_plan.conda}
    available = [*the_plan.conda, *added]
    for package, path in zip(added, files, strict=True):
        if package.subdir not in (the_plan.subdir, "noarch"):
            msg = f"cannot inject {path.name}: it is built for {package.subdir}"
            raise InputError(msg, hint=f"inject a package built for {the_plan.subdir} or noarch")
        if package.name in locked:
            msg = f"cannot inject {path.name}: the lock already holds {package.name}"
            raise InputError(msg, hint="remove it from the project, or inject another package")
        unmet = _unmet(package, available)
        if unmet:
            msg = f"cannot inject {path.name}: unmet dependency {'; '.join(unmet)}"
            raise InputError(msg, hint=_HINT)
    return replace(the_plan, conda=(*the_plan.conda, *added))

"""What sets the glibc floor, as far as it is known before anything is staged.

The lock's ``__glibc``, the conda records' ``__glibc >=`` dependencies and the wheels'
manylinux tags say it without a download; a base interpreter's own ELF files are read where
they are. What staging adds (bundled libraries, sdist builds, conda binaries) only pack knows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from portenv.errors import CompatibilityError
from portenv.model import Plan
from portenv.platforms import version_key

__all__ = ["lock_glibc_sources", "plan_glibc_sources", "refuse_above_ceiling", "wheel_glibc"]

_GLIBC_DEP = re.compile(r"^__glibc\s*>=\s*([0-9.]+)")
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_")
_OLD_MANYLINUX = {"manylinux1": "2.5", "manylinux2010": "2.12", "manylinux2014": "2.17"}
_SHOWN = 8


def lock_glibc_sources(lock_glibc: str | None, depends: Iterable[str]) -> list[tuple[str, str]]:
    """(version, what) of the floors a lock sets: its `__glibc`, the records' `__glibc >=`."""
    found = [(lock_glibc, "the lock's __glibc")] if lock_glibc else []
    for dep in sorted(set(depends)):
        match = _GLIBC_DEP.match(dep)
        if match:
            found.append((match.group(1).rstrip("."), f"a package's dependency {dep}"))
    return found


def wheel_glibc(file_name: str) -> str | None:
    """The oldest glibc a wheel's manylinux tags run on; None for other wheels.

    >>> wheel_glibc("numpy-2.2.6-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    '2.17'
    """
    try:
        tags = parse_wheel_filename(file_name)[3]
    except InvalidWheelFilename:
        return None
    versions = []
    for tag in tags:
        match = _MANYLINUX.match(tag.platform)
        if match:
            versions.append(f"{match.group(1)}.{match.group(2)}")
        versions += [v for old, v in _OLD_MANYLINUX.items() if tag.platform.startswith(old + "_")]
    return min(versions, key=version_key, default=None)


def plan_glibc_sources(
    the_plan: Plan, interpreter: Sequence[tuple[str, str]] = ()
) -> tuple[tuple[str, str], ...]:
    """(version, what) of everything the plan knows to set the floor, highest first.

    ``interpreter`` holds (version, file) of the base interpreter's own ELF files.
    """
    depends = [d for p in the_plan.conda for d in p.depends]
    found = lock_glibc_sources(the_plan.lock_glibc, depends)
    for package in the_plan.pypi:
        version = wheel_glibc(package.file_name) if package.kind == "wheel" else None
        if version is not None and package.action == "install":
            found.append((version, f"wheel {package.file_name}"))
    found += [(version, f"interpreter {file}") for version, file in interpreter]
    found.sort(key=lambda pair: (tuple(-n for n in version_key(pair[0])), pair[1]))
    return tuple(found)


def refuse_above_ceiling(sources: Iterable[tuple[str, str]], ceiling: str) -> None:
    """Refuse, naming each with its version, the (version, what) sources above ``ceiling``
    (``pack --glibc``)."""
    above = [(v, w) for v, w in sources if version_key(v) > version_key(ceiling)]
    if not above:
        return
    above.sort(key=lambda pair: tuple(-n for n in version_key(pair[0])))
    shown = ", ".join(f"{what} (GLIBC_{version})" for version, what in above[:_SHOWN])
    more = f" and {len(above) - _SHOWN} more" if len(above) > _SHOWN else ""
    msg = f"the environment needs glibc {above[0][0]}, above --glibc {ceiling}: {shown}{more}"
    hint = (
        "use packages built for that glibc (lower manylinux wheels; a python-build-standalone "
        "or older-glibc conda python), or raise --glibc"
    )
    raise CompatibilityError(msg, hint=hint)

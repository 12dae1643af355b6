"""What the target must offer: its machine and the lowest glibc that runs the environment."""

from __future__ import annotations

import re
from collections.abc import Iterable

from portenv.elf import ElfFacts, version_key
from portenv.errors import CompatibilityError

__all__ = ["check_machines", "glibc_floor"]

_GLIBC_DEP = re.compile(r"^__glibc\s*>=\s*([0-9.]+)")


def glibc_floor(elf: ElfFacts, lock_glibc: str | None, depends: Iterable[str]) -> str:
    """The highest of: the ELF symbol versions, the lock's `__glibc`, the records' `__glibc >=`."""
    candidates = [v for v in (elf.glibc_floor, lock_glibc) if v]
    for dep in depends:
        match = _GLIBC_DEP.match(dep)
        if match:
            candidates.append(match.group(1).rstrip("."))
    return max(candidates, key=version_key, default="2.17")


def check_machines(elf: ElfFacts, arch: str) -> None:
    """Refuse a prefix whose binaries are built for another machine than the platform's."""
    foreign = sorted(path for path, machine in elf.machines.items() if machine != arch)
    if foreign:
        first = foreign[0]
        msg = (
            f"{len(foreign)} ELF files are not {arch} binaries, e.g. {first} "
            f"({elf.machines[first]})"
        )
        raise CompatibilityError(msg, hint="lock packages built for the target platform")

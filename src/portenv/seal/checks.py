"""What the target must offer: its machine and the lowest glibc that runs the environment."""

from __future__ import annotations

import re
from collections.abc import Iterable

from portenv.elf import ElfFacts, version_key
from portenv.errors import CompatibilityError

__all__ = ["check_machines", "glibc_floor"]

_SHOWN = 3
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
    """Refuse a prefix whose binaries are built for another machine than the platform's.

    Only ELF headers are read, so this works the same when packing for another machine.
    """
    foreign = sorted(path for path, machine in elf.machines.items() if machine != arch)
    if foreign:
        shown = ", ".join(f"{path} ({elf.machines[path]})" for path in foreign[:_SHOWN])
        more = f" and {len(foreign) - _SHOWN} more" if len(foreign) > _SHOWN else ""
        msg = f"the environment for {arch} holds binaries of another machine: {shown}{more}"
        hint = "a package ships files for another platform: lock packages built for the target"
        raise CompatibilityError(msg, hint=hint)

"""What the target must offer: its machine and the lowest glibc that runs the environment."""

from __future__ import annotations

from collections.abc import Iterable

from portenv.elf import ElfFacts
from portenv.errors import CompatibilityError
from portenv.platforms import version_key
from portenv.source.glibc import lock_glibc_sources, refuse_above_ceiling

__all__ = ["check_glibc_ceiling", "check_machines", "glibc_floor"]

_SHOWN = 3


def glibc_floor(elf: ElfFacts, lock_glibc: str | None, depends: Iterable[str]) -> str:
    """The highest of: the ELF symbol versions, the lock's `__glibc`, the records' `__glibc >=`."""
    candidates = [v for v in (elf.glibc_floor,) if v]
    candidates += [version for version, _what in lock_glibc_sources(lock_glibc, depends)]
    return max(candidates, key=version_key, default="2.17")


def check_glibc_ceiling(
    elf: ElfFacts, ceiling: str, lock_glibc: str | None, depends: Iterable[str]
) -> None:
    """Refuse an environment that needs a newer glibc than ``ceiling`` (``pack --glibc``),
    naming every file (and lock entry) above it with the version it needs."""
    sources = lock_glibc_sources(lock_glibc, depends) + elf.floor_files(above=ceiling)
    refuse_above_ceiling(sources, ceiling)


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

"""What the target must offer: its machine and the lowest glibc that runs the environment."""

from __future__ import annotations

from collections.abc import Iterable

from portenv.elf import ElfFacts, version_key
from portenv.errors import CompatibilityError
from portenv.source.glibc import lock_glibc_sources

__all__ = ["check_glibc_ceiling", "check_machines", "glibc_floor"]

_SHOWN = 3
_SHOWN_FLOOR = 8


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
    above = [(v, w) for v, w in lock_glibc_sources(lock_glibc, depends) if _above(v, ceiling)]
    above += [(v, f) for v, f in elf.floor_files(above=ceiling)]
    if not above:
        return
    above.sort(key=lambda pair: tuple(-n for n in version_key(pair[0])))
    shown = ", ".join(f"{what} (GLIBC_{version})" for version, what in above[:_SHOWN_FLOOR])
    more = f" and {len(above) - _SHOWN_FLOOR} more" if len(above) > _SHOWN_FLOOR else ""
    msg = f"the environment needs glibc {above[0][0]}, above --glibc {ceiling}: {shown}{more}"
    hint = (
        "use packages built for that glibc (lower manylinux wheels; a python-build-standalone "
        "or older-glibc conda python), or raise --glibc"
    )
    raise CompatibilityError(msg, hint=hint)


def _above(version: str, ceiling: str) -> bool:
    return version_key(version) > version_key(ceiling)


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

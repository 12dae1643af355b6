"""What the ELF files of a tree demand of the target: machine and glibc version."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

from portenv.platforms import version_key

__all__ = ["ElfFacts", "machine_name", "scan_elf"]

_MACHINES = {
    "EM_X86_64": "x86_64",
    "EM_AARCH64": "aarch64",
    "EM_PPC64": "ppc64le",
    "EM_S390": "s390x",
    "EM_ARM": "armv7l",
    "EM_386": "i686",
}
ELF_MAGIC = b"\x7fELF"


def machine_name(e_machine: str) -> str:
    """What ``uname -m`` prints on a machine of this ELF ``e_machine`` (``EM_X86_64``)."""
    return _MACHINES.get(e_machine, e_machine)


@dataclass(frozen=True)
class ElfFacts:
    """The highest GLIBC_ symbol version needed, and by which file; machines seen."""

    glibc_floor: str | None
    floor_file: str | None
    machines: dict[str, str]
    """file (relative) -> machine, for every ELF file."""
    glibc_needs: dict[str, str] = field(default_factory=dict)
    """file (relative) -> the highest GLIBC_ version it needs, for every file that needs one."""

    def floor_files(
        self, limit: int | None = None, above: str | None = None
    ) -> list[tuple[str, str]]:
        """(version, file) pairs, highest version first (then by name): what sets the floor.

        ``above`` keeps only files that need more than that version.
        """
        pairs = [
            (version, relative)
            for relative, version in self.glibc_needs.items()
            if above is None or version_key(version) > version_key(above)
        ]
        pairs.sort(key=lambda pair: (tuple(-n for n in version_key(pair[0])), pair[1]))
        return pairs[:limit] if limit is not None else pairs


def _glibc_needs(elf: ELFFile) -> Iterable[str]:
    for section in elf.iter_sections():
        if isinstance(section, GNUVerNeedSection):
            for _verneed, auxiliaries in section.iter_versions():
                for aux in auxiliaries:
                    name = aux.name
                    if name.startswith("GLIBC_") and name[6:7].isdigit():
                        yield name[6:]


def scan_elf(root: Path, files: Iterable[str]) -> ElfFacts:
    """Read every ELF file among `files` (relative to `root`)."""
    floor: str | None = None
    floor_file: str | None = None
    machines: dict[str, str] = {}
    needs: dict[str, str] = {}
    for relative in files:
        path = root / relative
        with path.open("rb") as stream:
            if stream.read(4) != ELF_MAGIC:
                continue
            stream.seek(0)
            try:
                elf = ELFFile(stream)
                machines[relative] = machine_name(str(elf["e_machine"]))
                own = max(_glibc_needs(elf), key=version_key, default=None)
            except ELFError:
                continue
            if own is not None:
                needs[relative] = own
                if floor is None or version_key(own) > version_key(floor):
                    floor, floor_file = own, relative
    return ElfFacts(floor, floor_file, machines, needs)

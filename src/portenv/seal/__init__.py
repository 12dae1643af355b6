"""Make a staged prefix relocatable: record where the placeholder is, and what the target needs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from portenv import __version__
from portenv.model import PackMeta, RelocationManifest, StagedPrefix
from portenv.platforms import arch_of
from portenv.seal.bytecode import Bytecode, clear_bytecode, compile_prefix
from portenv.seal.files import target_file, write_text
from portenv.seal.manifest import scan_prefix, walk_files

__all__ = ["SealedPrefix", "seal"]

BLOCK = 4096
FLOOR_FILES = 5
"""The files with the highest GLIBC_ versions named in the meta block (glibc_floor_files)."""


@dataclass(frozen=True)
class SealedPrefix:
    """A staged prefix with its relocation manifest written, and the meta the target checks."""

    path: Path
    manifest: RelocationManifest
    meta: PackMeta


def _relativize_symlinks(root: Path, placeholder: str) -> None:
    """Absolute links into the env become relative, so they need no relocation."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            link = Path(dirpath, name)
            if link.is_symlink():
                target = os.readlink(link)
                if target.startswith(placeholder + "/"):
                    inside = root / target[len(placeholder) + 1 :]
                    link.unlink()
                    link.symlink_to(os.path.relpath(inside, link.parent))


def _add_support_files(staged: StagedPrefix) -> None:
    root = staged.path
    write_text(root / ".portenv" / "relocate.py", target_file("relocate.py"), 0o644)
    write_text(root / ".portenv" / "pyc_worker.py", target_file("pyc_worker.py"), 0o644)
    relocate_sh = target_file("portenv-relocate.sh").replace("@PYTHON@", staged.python)
    write_text(root / "bin" / "portenv-relocate", relocate_sh, 0o755)
    activate = target_file("activate.sh").replace("@PREFIX@", staged.placeholder)
    write_text(root / "bin" / "activate", activate, 0o644)


def packages_text(inventory: Sequence[Mapping[str, object]]) -> str:
    """One line per package (kind, name, version, build) for `sh env.sh --list`."""
    lines = [
        " ".join(str(e.get(k, "")) for k in ("kind", "name", "version", "build")).rstrip()
        for e in inventory
    ]
    return "".join(f"{line}\n" for line in sorted(lines))


def _disk_kib(root: Path, files: Iterable[str]) -> int:
    """Space the unpacked env takes, counting each file in whole 4 KiB blocks."""
    blocks = 0
    for relative in files:
        size = (root / relative).stat().st_size
        blocks += (size + BLOCK - 1) // BLOCK
    directories = sum(1 for _ in os.walk(root))
    return (blocks + directories) * BLOCK // 1024


def seal(
    staged: StagedPrefix,
    *,
    lock_glibc: str | None,
    depends: Iterable[str],
    inventory: Sequence[Mapping[str, object]] = (),
    glibc_ceiling: str | None = None,
    bytecode: Bytecode | None = None,
) -> SealedPrefix:
    """Write `.portenv/` into the staged prefix and describe what the target must offer.

    `inventory` lists the packages inside (with the hashes they were verified or recorded
    with); it lands in `.portenv/packages.json` for `--list` and audits, with what the
    installed files tell of each (seal.inventory: source, licence, size). With
    `glibc_ceiling` (`pack --glibc`), an environment that needs a newer glibc is refused.
    With `bytecode`, the .py files of its scope (every one, or the interpreter's library and
    the start-up hook) get their .pyc first (see seal.bytecode); without, the environment
    ships none.
    """
    # Imported here: a pack from the sealed-prefix cache (seal.cache) loads neither the ELF
    # reader nor the wheel installer.
    from portenv.elf import scan_elf
    from portenv.seal.certs import add_certificate_hook
    from portenv.seal.checks import check_glibc_ceiling, check_machines, glibc_floor
    from portenv.seal.inventory import describe_installed

    root = staged.path
    _relativize_symlinks(root, staged.placeholder)
    _add_support_files(staged)
    add_certificate_hook(staged)
    inventory = describe_installed(staged, inventory)
    packages_json = json.dumps(list(inventory), indent=1, sort_keys=True) + "\n"
    write_text(root / ".portenv" / "packages.json", packages_json, 0o644)
    write_text(root / ".portenv" / "packages.txt", packages_text(inventory), 0o644)
    if bytecode is not None:
        compile_prefix(root, bytecode, staged.placeholder)
    else:
        clear_bytecode(root)  # what came along is stale: the payload's mtimes are 0
    files = list(walk_files(root))
    arch = arch_of(staged.subdir)
    elf = scan_elf(root, files)
    check_machines(elf, arch)
    depends = list(depends)
    if glibc_ceiling is not None:
        check_glibc_ceiling(elf, glibc_ceiling, lock_glibc, depends)
    manifest = RelocationManifest(
        prefix=staged.placeholder,
        prefix_max=len(staged.placeholder),
        python=staged.python,
        files=scan_prefix(root, staged.placeholder),
    )
    manifest_path = root / ".portenv" / "manifest.json"
    write_text(
        manifest_path, json.dumps(manifest.to_json(), indent=1, sort_keys=True) + "\n", 0o644
    )
    entries = sum(len(d) + len(f) for _, d, f in os.walk(root))
    meta = PackMeta(
        platform=staged.subdir,
        arch=arch,
        glibc_floor=glibc_floor(elf, lock_glibc, depends),
        unpacked_kib=_disk_kib(root, [*files, ".portenv/manifest.json"]),
        files=entries,
        prefix_max=manifest.prefix_max,
        python=staged.python,
        portenv_version=__version__,
        glibc_floor_files=tuple(elf.floor_files(FLOOR_FILES)),
    )
    return SealedPrefix(root, manifest, meta)

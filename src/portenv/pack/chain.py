"""The chain every environment archive ends in: stage -> wheels -> seal -> write.

It takes an ArchiveJob, whatever the source, so that a sealed prefix cached by an earlier pack
of the same inputs (and its kept payload) serves every kind of source alike.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

from portenv.model import FetchedPackage, StagedPrefix, Subdir
from portenv.platforms import host_subdir
from portenv.reporting import Reporter
from portenv.seal.cache import SealCache
from portenv.seal.listing import Entry, listing
from portenv.write import (
    WrittenArchive,
    write_archive,
)
from portenv.write.kept import KeptPayloads
from portenv.write.payload import PayloadMismatchError

if TYPE_CHECKING:
    from portenv.seal import SealedPrefix
    from portenv.seal.bytecode import Bytecode, BytecodeScope
    from portenv.stage.bundle import Bundle
    from portenv.stage.cpython import BaseInterpreter
    from portenv.stage.wheels import FetchedWheel

# The staging, sealing and ELF code is imported where it runs: a pack from the sealed-prefix
# cache needs none of it, and its import is most of a small pack's time.

__all__ = [
    "ArchiveJob",
    "InventoryOf",
    "WheelsFor",
    "stage_seal_write",
]


@dataclass(frozen=True)
class ArchiveJob:
    """What to stage, seal and write as one portenv archive."""

    conda: Sequence[FetchedPackage]
    """Verified conda packages (empty for the conda-free source)."""
    subdir: Subdir
    output: Path
    env_name: str
    compression: str
    level: int | None
    cache: Path
    lock_glibc: str | None = None
    base_python: BaseInterpreter | None = None
    """For the conda-free source: the interpreter made portable as the prefix."""
    seal_key: Mapping[str, object] | None = None
    """Everything the sealed prefix is made from, when it may be cached (see seal.cache)."""
    allow_missing: tuple[str, ...] = ()
    """Shared libraries left to the target (see PackRequest)."""
    glibc: str | None = None
    """The newest glibc floor allowed (see PackRequest)."""
    bytecode: BytecodeScope = "all"
    """Which sources ship with their .pyc (see seal.bytecode.BYTECODE_SCOPES)."""
    unchecked: str | None = None
    """A folder whose files the prefix is copied from but that the seal key covers: an
    extracted python-build-standalone archive (gone after the pack)."""
    entry: str = ""
    """The command the env.sh runs (see check_entry_option)."""
    plain: Literal["", "tar.gz", "zip"] = ""
    """A plain archive's format (write.plain), instead of a portenv archive."""
    dereference: bool = False

    def make_prefix(self, dest: Path) -> StagedPrefix:
        """Install the env's base into `dest`: a portable CPython, or the conda packages."""
        from portenv.stage import prefix_capacity, stage
        from portenv.stage.cpython import stage_portable_python

        if self.base_python is not None:
            return stage_portable_python(self.base_python, dest, self.subdir)
        return stage(
            self.conda,
            dest,
            subdir=self.subdir,
            rattler_cache=self.cache / "rattler",
            prefix_max=prefix_capacity(self.conda),
        )


WheelsFor: TypeAlias = "Callable[[StagedPrefix], list[FetchedWheel]]"


InventoryOf: TypeAlias = "Callable[[list[FetchedWheel]], list[dict[str, object]]]"


def stage_seal_write(
    job: ArchiveJob, wheels_for: WheelsFor, inventory_of: InventoryOf, reporter: Reporter
) -> WrittenArchive:
    """The chain every source ends in: stage -> wheels -> seal -> write, in a scratch folder.

    `wheels_for` gets the staged prefix, since building an sdist needs its interpreter. With a
    `seal_key`, a sealed prefix cached by an earlier pack of the same inputs is written
    instead, if it still is what it was; a new one is kept for the next pack.
    """
    cache = SealCache(job.cache / "sealed") if job.seal_key is not None else None
    inputs = {**(job.seal_key or {}), "bytecode": job.bytecode}
    key = cache.key(inputs) if cache is not None else ""
    hit = cache.lookup(key) if cache is not None else None
    if cache is not None and hit is not None:
        reporter.on_info(f"reusing the sealed environment cached in {hit.sealed.path.parent}")
        try:
            kept = KeptPayloads(hit.sealed.path.parent / "payloads")
            return _write(job, hit.sealed, reporter, hit.entries, hit.tar_sha256, kept)
        except (PayloadMismatchError, FileNotFoundError):
            reporter.on_warning("the cached environment was changed on disk; staging it again")
            cache.discard(key)
    if cache is not None:
        folder = cache.new_folder()
    else:
        (job.cache / "staging").mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=job.cache / "staging", prefix="env-"))
    from portenv.seal import seal
    from portenv.stage.wheels import install_wheels

    try:
        token = reporter.on_task_start("staging", None)
        staged = job.make_prefix(folder / "prefix")
        wheels = wheels_for(staged)
        install_wheels(wheels, staged)
        bundle = _complete_closure(job, staged, reporter)
        reporter.on_task_complete(token)
        token = reporter.on_task_start("sealing", None)
        sealed = seal(
            staged,
            lock_glibc=job.lock_glibc,
            depends=[d for f in job.conda for d in f.package.depends],
            inventory=inventory_of(wheels),
            glibc_ceiling=job.glibc,
            bytecode=_compiler(staged, job.bytecode, job.cache, reporter),
        )
        reporter.on_task_complete(token)
        entries = listing(sealed.path)
        payloads = KeptPayloads(folder / "payloads") if cache is not None else None
        written = _write(job, sealed, reporter, entries, None, payloads)
        if cache is not None:
            # the build machine's files the prefix holds copies of: checked before each reuse
            copied = (*staged.sources, *(b.source for b in bundle.bundled))
            outside = (s for s in copied if not _under(s, job.unchecked))
            cache.store(key, folder, sealed, entries, written.tar_sha256, outside)
        return written
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _complete_closure(job: ArchiveJob, staged: StagedPrefix, reporter: Reporter) -> Bundle:
    """Bundle the shared libraries the target lacks (from this machine, for its own platform)."""
    from portenv.stage.bundle import complete_closure

    bundle = complete_closure(
        staged, allow_missing=job.allow_missing, from_host=staged.subdir == host_subdir()
    )
    if bundle.bundled:
        size = sum(b.size for b in bundle.bundled)
        names = ", ".join(b.name for b in bundle.bundled)
        reporter.on_info(f"bundled {len(bundle.bundled)} libraries ({size:,} bytes): {names}")
    for left in bundle.left_to_target:
        why = "a driver library" if left.reason == "driver" else "--allow-missing-library"
        reporter.on_warning(
            f"{left.name} is left to the target ({why}), needed by {left.needed_by[0]}"
            + (f" and {len(left.needed_by) - 1} more" if len(left.needed_by) > 1 else "")
        )
    return bundle


def _under(path: str, folder: str | None) -> bool:
    return folder is not None and path.startswith(folder.rstrip("/") + "/")


def _compiler(
    staged: StagedPrefix, scope: BytecodeScope, cache: Path, reporter: Reporter
) -> Bytecode | None:
    """Who compiles the bytecode, and which; without anyone, the pack goes on with one warning."""
    from portenv.seal.bytecode import find_compiler

    if scope == "none":
        return None
    found = find_compiler(staged)
    if isinstance(found, str):
        reporter.on_warning(f"packing without bytecode: {found}")
        return None
    return replace(found, cache=cache / "bytecode", scope=scope)


def _write(
    job: ArchiveJob,
    sealed: SealedPrefix,
    reporter: Reporter,
    entries: list[Entry],
    expect_tar_sha256: str | None,
    kept: KeptPayloads | None = None,
) -> WrittenArchive:
    """Write the archive `job` asks for; `kept`: the cache entry's compressed payloads."""
    if job.plain:
        from portenv.write.plain import write_plain

        level = 2 if job.level is None else job.level
        return write_plain(
            sealed,
            job.output,
            archive_format=job.plain,
            dereference=job.dereference,
            level=level,
            entries=entries,
            expect_tar_sha256=expect_tar_sha256,
            reporter=reporter,
        )
    return write_archive(
        sealed,
        job.output,
        env_name=job.env_name,
        compression=job.compression,
        level=job.level,
        entries=entries,
        expect_tar_sha256=expect_tar_sha256,
        reporter=reporter,
        entry=job.entry,
        kept=kept,
    )

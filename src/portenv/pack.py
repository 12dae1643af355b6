"""The pipeline end to end: source -> plan -> fetch -> stage -> seal -> write.

`pack` asks two questions once each: which source (`source_for`: a pixi lock, a CPython +
requirements, a pixi-pack archive) and which writer (portenv or plain archive, which stage
and seal; pixi-pack, which writes the fetched files as they are).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias

import platformdirs

from portenv.errors import InputError, OutputError, StageError, UsageError
from portenv.fetch import (
    cache_path,
    fetch_conda,
    fetch_pypi,
    file_digest,
    resolve_location,
)
from portenv.format import env_name_problem
from portenv.model import FetchedPackage, Plan, PypiSource, StagedPrefix, Subdir
from portenv.platforms import arch_of, host_subdir
from portenv.reporting import NullReporter, Reporter
from portenv.seal.cache import SealCache
from portenv.seal.listing import Entry, listing
from portenv.source import PixiProject, plan_pixi_project
from portenv.source.glibc import plan_glibc_sources, refuse_above_ceiling
from portenv.source.inject import inject
from portenv.source.pixi import stale_lock_warnings
from portenv.source.pixipack import PixiPack, open_pixi_pack, read_metadata
from portenv.source.pypi import decide, editable_notes, wheel_misfit
from portenv.source.requirements import (
    RequirementsInput,
    requirement_notes,
    resolve_requirements,
)
from portenv.write import (
    WrittenArchive,
    atomic_output,
    publish_sha256,
    write_archive,
    writer_for,
)
from portenv.write.codecs import check_level, chosen
from portenv.write.entry import parse_entry
from portenv.write.kept import KeptPayloads
from portenv.write.payload import PayloadMismatchError
from portenv.write.pixipack import write_pixi_pack
from portenv.write.plain import check_plain_options, plain_format
from portenv.write.sbom import publish_sbom, sbom_timestamp

if TYPE_CHECKING:
    from portenv.seal import SealedPrefix
    from portenv.seal.bytecode import Bytecode
    from portenv.stage.bundle import Bundle
    from portenv.stage.cpython import BaseInterpreter
    from portenv.stage.wheels import FetchedWheel

# The staging, sealing and ELF code is imported where it runs: a pack from the sealed-prefix
# cache needs none of it, and its import is most of a small pack's time.

__all__ = [
    "ArchiveJob",
    "Fetched",
    "OpenedSource",
    "PackRequest",
    "PixiLockSource",
    "PixiPackRequest",
    "PixiPackSource",
    "PlanRequest",
    "PythonRequest",
    "PythonSource",
    "Source",
    "SourceRequest",
    "cached_capacity",
    "check_entry_option",
    "check_env_name",
    "check_glibc_option",
    "check_output",
    "default_cache",
    "pack",
    "pixi_pack_inventory",
    "plan",
    "python_seal_inputs",
    "refuse_conflicts",
    "seal_inputs",
    "source_for",
    "stage_seal_write",
]


def default_cache() -> Path:
    """The per-user cache shared by every project."""
    return Path(platformdirs.user_cache_dir("portenv"))


@dataclass(frozen=True)
class PlanRequest:
    """What to read: a project, one of its environments, one platform."""

    project: Path
    environment: str = "default"
    platform: str | None = None
    skip_pypi: tuple[str, ...] = ()


@dataclass(frozen=True)
class PythonRequest:
    """The conda-free source: a local CPython installation plus PyPI requirements."""

    python: Path
    """An interpreter, or a python-build-standalone archive (.tar.gz, .tar.zst)."""
    requirements: RequirementsInput = field(default_factory=RequirementsInput)
    platform: str | None = None
    skip_pypi: tuple[str, ...] = ()
    pip: bool = True
    """Install the interpreter's own ensurepip wheel of pip, as ``python -m venv`` does."""


@dataclass(frozen=True)
class PackRequest:
    """What to pack and where to write it."""

    source: SourceRequest | Source
    """What to pack: a request portenv knows (source_for), or a Source of the caller's own."""
    output: Path
    format: Literal["portenv", "pixi-pack", "tar.gz", "zip"] = "portenv"
    cache: Path | None = None
    env_name: str = "env"
    compression: str | None = None
    """The payload codec; None: the default (codecs.DEFAULT_COMPRESSION)."""
    level: int | None = None
    """The codec's level; None for its default."""
    jobs: int = 8
    inject: tuple[Path, ...] = ()
    """Local conda package files added to the environment (pixi-pack format only)."""
    reuse_sealed: bool = True
    """Reuse (and keep) the sealed prefix of an earlier pack of the same inputs."""
    sbom: bool = False
    """Also write a CycloneDX SBOM of the archive beside it (``OUTPUT.cdx.json``)."""
    allow_missing: tuple[str, ...] = ()
    """Shared libraries (sonames or globs) left to the target: never bundled, never missing."""
    glibc: str | None = None
    """The oldest glibc the archive must run on: a newer floor is refused (`--glibc`)."""
    bytecode: bool = True
    """Ship a .pyc for every .py (see seal.bytecode)."""
    entry: str = ""
    """The command of the environment's bin/ that the env.sh runs (a one-file app)."""
    dereference: bool = False
    """A plain archive (tar.gz) stores symlinks as copies (see write.plain)."""


@dataclass(frozen=True)
class PixiPackRequest:
    """A pixi-pack archive (its tar, or the folder it was extracted to): `portenv convert`."""

    archive: Path


SourceRequest: TypeAlias = "PlanRequest | PythonRequest | PixiPackRequest"


@dataclass(frozen=True)
class Fetched:
    """A source's packages as files on this machine, every one verified."""

    conda: tuple[FetchedPackage, ...]
    pypi: tuple[PypiSource, ...]


class OpenedSource(Protocol):
    """What to pack, ready for the stages after the plan: each kind of source answers for itself.

    The protocol lives here, in the runner, and not in source/: answering needs the stages
    after the plan (fetch, a portable interpreter from stage/, the inventory from seal/), and
    a module may import only from its own stage or an earlier one (tests/unit/test_layers.py).
    """

    @property
    def plan(self) -> Plan:
        """What is packed (glibc_sources left for `plan` to fill)."""
        ...

    @property
    def base(self) -> BaseInterpreter | None:
        """The interpreter made portable as the prefix (the conda-free source), else None."""
        ...

    @property
    def unchecked(self) -> str | None:
        """A scratch folder the prefix is copied from that the seal inputs cover (ArchiveJob)."""
        ...

    def glibc_sources(self, limit: int) -> tuple[tuple[str, str], ...]:
        """(version, what) known to set the glibc floor before staging (`limit` files of the
        interpreter, which the conda-free source measures)."""
        ...

    def fetch(self, jobs: int) -> Fetched:
        """The packages as verified files: downloaded into the cache, or read from the archive."""
        ...

    def seal_inputs(self, fetched: Fetched) -> dict[str, object] | None:
        """Everything the sealed prefix is made from, or None when it must not be reused."""
        ...

    def wheels(self, fetched: Fetched, staged: StagedPrefix) -> list[FetchedWheel]:
        """The wheels to install into the staged prefix (sdists are built with its python)."""
        ...

    def inventory(self, fetched: Fetched, wheels: list[FetchedWheel]) -> list[dict[str, object]]:
        """What ``.portenv/packages.json`` says of each package."""
        ...


class Source(Protocol):
    """A kind of input: opened once per pack, it is the only place that knows what it is."""

    def open(self, cache: Path, reporter: Reporter) -> AbstractContextManager[OpenedSource]:
        """Read the input and plan it; what it leaves in the cache's scratch goes on exit."""
        ...


def source_for(
    request: SourceRequest | Source, *, glibc: str | None = None, inject: tuple[Path, ...] = ()
) -> Source:
    """The one place that asks which source a request names (a Source given is used as is).

    `glibc` resolves a conda-free source's wheels for that manylinux level; `inject` adds
    local conda packages to a lock's environment (pixi-pack format only, see refuse_conflicts).
    """
    if isinstance(request, PlanRequest):
        return PixiLockSource(request, inject)
    if inject:
        msg = "--inject adds packages to a pixi project's environment only"
        raise UsageError(msg, hint="pack the pixi project, or drop --inject")
    if isinstance(request, PythonRequest):
        return PythonSource(request, glibc)
    if isinstance(request, PixiPackRequest):
        return PixiPackSource(request)
    return request


def plan(request: SourceRequest | Source) -> Plan:
    """List what packing would take, without downloading anything."""
    with source_for(request).open(default_cache(), NullReporter()) as opened:
        return replace(opened.plan, glibc_sources=opened.glibc_sources(limit=3))


@dataclass(frozen=True)
class OpenedLock:
    """A pixi lock's environment: its packages are downloaded into the cache and verified."""

    plan: Plan
    cache: Path
    reporter: Reporter
    base: BaseInterpreter | None = None
    unchecked: str | None = None

    def glibc_sources(self, limit: int) -> tuple[tuple[str, str], ...]:
        """What the records say (the lock's __glibc, packages that require a glibc)."""
        return plan_glibc_sources(self.plan)

    def fetch(self, jobs: int) -> Fetched:
        """Download (or find in the cache) every file the plan lists."""
        conda = fetch_conda(
            self.plan.conda,
            self.cache,
            base=self.plan.project_dir,
            reporter=self.reporter,
            jobs=jobs,
        )
        return Fetched(tuple(conda), tuple(_fetch_pypi(self.plan, self.cache, self.reporter, jobs)))

    def seal_inputs(self, fetched: Fetched) -> dict[str, object] | None:
        """The lock's records and files (see seal_inputs)."""
        return seal_inputs(self.plan, fetched.conda, fetched.pypi)

    def wheels(self, fetched: Fetched, staged: StagedPrefix) -> list[FetchedWheel]:
        """The locked wheels, and those built from its sdists and source folders."""
        return _wheels(list(fetched.pypi), staged, self.plan, self.cache)

    def inventory(self, fetched: Fetched, wheels: list[FetchedWheel]) -> list[dict[str, object]]:
        """The lock's conda records and the installed wheels."""
        return _inventory(self.plan, wheels)


@dataclass(frozen=True)
class OpenedPython(OpenedLock):
    """A CPython + requirements: the interpreter is the base, pip comes from its ensurepip."""

    request: PythonRequest = field(kw_only=True)

    def glibc_sources(self, limit: int) -> tuple[tuple[str, str], ...]:
        """The wheels' manylinux levels and what the interpreter's own ELF files need."""
        from portenv.stage.cpython_inspect import interpreter_glibc

        own = interpreter_glibc(self.base, limit=limit) if self.base is not None else ()
        return plan_glibc_sources(self.plan, own)

    def seal_inputs(self, fetched: Fetched) -> dict[str, object] | None:
        """The interpreter, the requirements and pip or not (see python_seal_inputs)."""
        if self.base is None:
            return None
        return python_seal_inputs(self.request, self.base, self.plan, fetched.pypi)

    def wheels(self, fetched: Fetched, staged: StagedPrefix) -> list[FetchedWheel]:
        """The requirements' wheels, and pip unless --no-pip."""
        wheels = super().wheels(fetched, staged)
        if self.base is not None and self.request.pip:
            wheels += _pip_wheels(staged, self.base, self.plan, self.reporter)
        return wheels

    def inventory(self, fetched: Fetched, wheels: list[FetchedWheel]) -> list[dict[str, object]]:
        """The wheels, and the interpreter, which no package brings (seal.inventory)."""
        from portenv.seal.inventory import interpreter_entry

        own = [] if self.base is None else [interpreter_entry(self.base.version)]
        return super().inventory(fetched, wheels) + own


@dataclass(frozen=True)
class OpenedPixiPack:
    """A pixi-pack archive, verified: its files are the fetched packages, nothing is downloaded."""

    plan: Plan
    pack: PixiPack
    base: BaseInterpreter | None = None
    unchecked: str | None = None

    def glibc_sources(self, limit: int) -> tuple[tuple[str, str], ...]:
        """What the packages' records say."""
        return plan_glibc_sources(self.plan)

    def fetch(self, jobs: int) -> Fetched:
        """The archive's packages, already checked against its repodata and wheel tags."""
        return Fetched(self.pack.conda, self.pack.wheels)

    def seal_inputs(self, fetched: Fetched) -> dict[str, object] | None:
        """Never reused: the archive's scratch copy is gone after the pack."""
        return None

    def wheels(self, fetched: Fetched, staged: StagedPrefix) -> list[FetchedWheel]:
        """The archive's wheels, named by their place in it."""
        from portenv.stage.wheels import FetchedWheel

        return [FetchedWheel(w, w.path, w.package.url) for w in fetched.pypi]

    def inventory(self, fetched: Fetched, wheels: list[FetchedWheel]) -> list[dict[str, object]]:
        """Each package and where in the archive it was (see pixi_pack_inventory)."""
        return pixi_pack_inventory(self.pack)


@dataclass(frozen=True)
class PixiLockSource:
    """One environment of a pixi project's lock (`inject`: local conda packages added)."""

    request: PlanRequest
    inject: tuple[Path, ...] = ()

    @contextlib.contextmanager
    def open(self, cache: Path, reporter: Reporter) -> Iterator[OpenedSource]:
        """The lock's plan; a lock its manifest has moved on from still packs, with warnings."""
        for warning in stale_lock_warnings(self.request.project):
            reporter.on_warning(warning)
        the_plan = _plan_lock(self.request)
        if self.inject:
            the_plan = inject(the_plan, self.inject)
        yield OpenedLock(the_plan, cache, reporter)


def _plan_lock(request: PlanRequest) -> Plan:
    """The plan of one environment of a pixi project's lock, read from the files alone."""
    return plan_pixi_project(
        PixiProject.from_path(request.project),
        environment=request.environment,
        platform=request.platform,
        skip_pypi=request.skip_pypi,
    )


@dataclass(frozen=True)
class PythonSource:
    """A local CPython (or python-build-standalone archive) plus PyPI requirements."""

    request: PythonRequest
    glibc: str | None = None

    @contextlib.contextmanager
    def open(self, cache: Path, reporter: Reporter) -> Iterator[OpenedSource]:
        """The interpreter inspected (an archive extracted under the cache meanwhile), the
        requirements resolved for its version and platform."""
        with base_interpreter(self.request.python, cache) as base:
            the_plan = _plan_python(self.request, base, self.glibc)
            unchecked = _extracted(self.request, base)
            yield OpenedPython(the_plan, cache, reporter, base, unchecked, request=self.request)


@dataclass(frozen=True)
class PixiPackSource:
    """A pixi-pack archive: verified into the cache's scratch, then packed offline."""

    request: PixiPackRequest

    @contextlib.contextmanager
    def open(self, cache: Path, reporter: Reporter) -> Iterator[OpenedSource]:
        """The archive checked (platform first, before anything is extracted) and planned."""
        archive = self.request.archive
        arch_of(read_metadata(archive).platform)  # refuses platforms portenv cannot pack
        scratch_root = cache / "staging"
        scratch_root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=scratch_root, prefix="convert-"))
        try:
            pack = open_pixi_pack(archive, scratch / "pack")
            subdir = pack.metadata.platform
            conda = tuple(f.package for f in pack.conda)
            pypi = tuple(w.package for w in pack.wheels)
            the_plan = Plan(pack.root, archive.name, subdir, subdir, conda, pypi, ())
            yield OpenedPixiPack(the_plan, pack)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def base_interpreter(python: Path, cache: Path) -> Iterator[BaseInterpreter]:
    """The installation ``python`` names; an archive is extracted under the cache meanwhile."""
    from portenv.stage.cpython import inspect_interpreter
    from portenv.stage.cpython_archive import extracted_standalone, is_python_archive

    if not is_python_archive(python):
        yield inspect_interpreter(python)
        return
    with extracted_standalone(python, cache / "staging") as executable:
        yield inspect_interpreter(executable)


def _plan_python(request: PythonRequest, base: BaseInterpreter, glibc: str | None = None) -> Plan:
    """The plan of a CPython + requirements: the interpreter's own platform, locked PyPI files."""
    subdir = host_subdir()
    if request.platform not in (None, subdir):
        msg = f"a local interpreter runs on {subdir} only, not {request.platform}"
        raise InputError(msg, hint="pack on a machine of the target's platform, or drop -p")
    version = (base.version[0], base.version[1])
    pypi = resolve_requirements(
        request.requirements, base.version, subdir, interpreter=base.executable, glibc=glibc
    )
    decided = tuple(
        decide(p, python_version=version, subdir=subdir, host_subdir=subdir, skip=request.skip_pypi)
        for p in pypi
    )
    problems = tuple(f"pypi package {p.name}: {p.reason}" for p in decided if p.action == "refuse")
    folder = request.requirements.project or Path.cwd()
    name = f"python{version[0]}.{version[1]}"
    notes = requirement_notes(request.requirements) + editable_notes(decided)
    return Plan(folder, name, subdir, Subdir(subdir), (), decided, problems, notes=notes)


def cached_capacity(the_plan: Plan, cache: Path | None = None) -> int | None:
    """The longest destination path, if every package is already cached (plan never downloads)."""
    cache = (cache or default_cache()).resolve()
    fetched = []
    for package in the_plan.conda:
        path = cache_path(cache, package) if (package.sha256 or package.md5) else None
        if path is None or not path.is_file():
            return None
        fetched.append(FetchedPackage(package, path))
    from portenv.stage import prefix_capacity

    return prefix_capacity(fetched)


def check_output(output: Path, cache: Path, *, portenv_format: bool = True) -> None:
    """Refuse, before any work, an output portenv could not write or should not write there."""
    if portenv_format:
        writer_for(output)
    parent = output.resolve().parent
    if not parent.is_dir():
        msg = f"output folder does not exist: {parent}"
        raise OutputError(msg, hint="create it first, or choose another -o")
    if parent == cache or cache in parent.parents:
        msg = f"output {output} is inside the cache folder {cache}"
        raise OutputError(msg, hint="write the archive somewhere else")


def check_glibc_option(glibc: str | None) -> None:
    """`--glibc` names a glibc release: 2.N."""
    if glibc is not None and not re.fullmatch(r"2\.[0-9]{1,3}", glibc):
        msg = f"invalid --glibc version: {glibc!r}"
        raise InputError(msg, hint="give a glibc release such as 2.28")


def check_entry_option(entry: str, output: Path) -> str:
    """`--entry`'s command in the form the header holds; only an env.sh can run one."""
    if not entry:
        return ""
    if output.suffix != ".sh":
        msg = f"--entry makes a runnable env.sh, not {output.name}"
        raise InputError(msg, hint="name the output like tool.sh")
    return parse_entry(entry)


def check_env_name(name: str) -> None:
    """The folder name the target creates must be one plain name (format.env_name_problem)."""
    problem = env_name_problem(name)
    if problem is not None:
        msg = f"invalid environment folder name: {problem}"
        raise InputError(msg, hint="use a plain folder name such as env")


def _refuse_problems(the_plan: Plan, reporter: Reporter) -> None:
    for note in the_plan.notes:
        reporter.on_info(f"note: {note}")
    for package in the_plan.pypi:
        if package.action == "skip":
            reporter.on_warning(f"skipping PyPI package {package.name} {package.version}")
    if the_plan.problems:
        first = the_plan.problems[0]
        more = f" (and {len(the_plan.problems) - 1} more)" if len(the_plan.problems) > 1 else ""
        msg = f"cannot pack {the_plan.environment} for {the_plan.platform}: {first}{more}"
        raise InputError(msg, hint="`portenv plan` lists every problem")


def _fetch_pypi(the_plan: Plan, cache: Path, reporter: Reporter, jobs: int) -> list[PypiSource]:
    """Bring wheels and sdists into the cache; local source folders are used in place."""
    wanted = [p for p in the_plan.pypi if p.action in ("install", "build")]
    return fetch_pypi(wanted, the_plan.project_dir, cache, reporter, jobs)


def _wheels(
    sources: list[PypiSource], staged: StagedPrefix, the_plan: Plan, cache: Path
) -> list[FetchedWheel]:
    from portenv.stage.build import build_wheel
    from portenv.stage.wheels import FetchedWheel

    python = staged.python.removeprefix("bin/python").split(".")
    version = (int(python[0]), int(python[1]))
    wheels = []
    for source in sources:
        package, path = source.package, source.path
        if package.action == "build":
            path = build_wheel(source, staged, cache)
            misfit = wheel_misfit(path.name, version, the_plan.subdir)
            if misfit:
                msg = f"the wheel built for {package.name} does not fit the target: {misfit}"
                raise StageError(msg, hint=f"lock a wheel, or pass --skip-pypi {package.name}")
        url = resolve_location(package.url.removeprefix("direct+"), the_plan.project_dir)
        wheels.append(FetchedWheel(source, path, url))
    return wheels


def _inventory(the_plan: Plan, wheels: list[FetchedWheel]) -> list[dict[str, object]]:
    conda: list[dict[str, object]] = [{"kind": "conda", **p.to_json()} for p in the_plan.conda]
    return conda + [_pypi_entry(w.source) for w in wheels]


def _pypi_entry(source: PypiSource) -> dict[str, object]:
    """What `.portenv/packages.json` says of a PyPI package: where from, verified how."""
    package = source.package
    entry: dict[str, object] = {
        "kind": "pypi",
        "name": package.name,
        "version": package.version,
        "url": package.url,
        "built_from_source": package.action == "build",
    }
    if source.origin == "git":
        entry["commit"] = source.digest
    elif source.origin == "folder":
        entry["source_folder"] = True
    else:
        entry["sha256"] = source.digest
        entry["sha256_from"] = "lock" if package.sha256 else "computed"
    return entry


def _archived_inventory(
    conda: Sequence[FetchedPackage], pypi: Sequence[PypiSource]
) -> list[dict[str, object]]:
    """The packages of a pixi-pack archive, described from their files (nothing is installed)."""
    from portenv.seal.inventory import conda_entry, wheel_facts

    entries = [conda_entry(fetched.package) for fetched in conda]
    for source in pypi:
        entry = _pypi_entry(source)
        entries.append({**wheel_facts(entry, source.path), **entry})
    return entries


def pixi_pack_inventory(pack: PixiPack) -> list[dict[str, object]]:
    """Each package of a pixi-pack, where in it it was, its hash, source and licence (from its
    record, or its wheel's METADATA): ``.portenv/packages.json`` of the converted archive, and
    what ``portenv inspect`` lists of the pack itself."""
    from portenv.seal.inventory import conda_entry, wheel_facts

    entries: list[dict[str, object]] = []
    for fetched in pack.conda:
        entries.append({**conda_entry(fetched.package), "from": "pixi-pack"})
    for wheel in pack.wheels:
        entry: dict[str, object] = {
            "kind": "pypi",
            "name": wheel.package.name,
            "version": wheel.package.version,
            "url": pack.location(wheel.path),
            "built_from_source": False,
            "sha256": wheel.sha256,
            "sha256_from": "computed",
            "from": "pixi-pack",
        }
        entries.append({**wheel_facts(entry, wheel.path), **entry})
    return entries


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
    bytecode: bool = True
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
            bytecode=_compiler(staged, job.cache, reporter) if job.bytecode else None,
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


def _compiler(staged: StagedPrefix, cache: Path, reporter: Reporter) -> Bytecode | None:
    """Who compiles the bytecode; without anyone, the pack goes on with one warning."""
    from portenv.seal.bytecode import find_compiler

    found = find_compiler(staged)
    if isinstance(found, str):
        reporter.on_warning(f"packing without bytecode: {found}")
        return None
    return replace(found, cache=cache / "bytecode")


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


def seal_inputs(
    the_plan: Plan,
    fetched: Sequence[FetchedPackage],
    pypi_sources: Sequence[PypiSource],
) -> dict[str, object] | None:
    """What a conda-based prefix is staged and sealed from, or None when that is not all known.

    Local source folders can change under the same lock, so they are never cached (for the
    conda-free source, see python_seal_inputs).
    """
    if any(s.origin == "folder" for s in pypi_sources):
        return None
    return {
        "subdir": the_plan.subdir,
        "lock_glibc": the_plan.lock_glibc,
        "conda": [
            {**f.package.to_json(), "file_name": f.package.file_name, "md5": f.package.md5}
            for f in fetched
        ],
        "pypi": [{**s.package.to_json(), "source_sha256": s.key} for s in pypi_sources],
    }


def pack(request: PackRequest, reporter: Reporter | None = None) -> WrittenArchive:
    """Pack one environment into `request.output` (and its SBOM, if asked).

    The source is chosen once (source_for), the writer once (by `request.format`): pixi-pack
    writes the fetched packages as they are; the others stage, seal and write (portenv archive,
    or a plain tar.gz / zip).
    """
    reporter = reporter or NullReporter()
    refuse_conflicts(request)
    timestamp = sbom_timestamp() if request.sbom else None  # a bad one stops before any work
    cache = _cache_of(request)
    write = _write_pixi_pack if request.format == "pixi-pack" else _write_environment
    request = _preflight(request, cache)
    source = source_for(request.source, glibc=request.glibc, inject=request.inject)
    with source.open(cache, reporter) as opened:
        written = write(opened, request, reporter)
    if not request.sbom:
        return written
    properties: dict[str, str] = {"format": request.format}
    if written.meta is not None:
        properties |= {"platform": written.meta.platform, "glibc_floor": written.meta.glibc_floor}
    sbom = publish_sbom(
        written.path,
        written.inventory,
        written.sha256,
        properties=properties,
        timestamp=timestamp,
    )
    return replace(written, sbom=sbom)


def _cache_of(request: PackRequest) -> Path:
    return (request.cache or default_cache()).resolve()


def _preflight(request: PackRequest, cache: Path) -> PackRequest:
    """Refuse, before the source is read, what the writer could not write (the entry parsed)."""
    if request.format == "pixi-pack":
        if request.output.suffix != ".tar":
            msg = f"a pixi-pack archive is a .tar, not {request.output.name}"
            raise OutputError(msg, hint="name the output like environment.tar")
        check_output(request.output, cache, portenv_format=False)
        return request
    check_output(request.output, cache, portenv_format=not plain_format(request.format))
    check_env_name(request.env_name)
    check_level(chosen(request.compression), request.level)
    check_glibc_option(request.glibc)
    return replace(request, entry=check_entry_option(request.entry, request.output))


def _write_pixi_pack(
    opened: OpenedSource, request: PackRequest, reporter: Reporter
) -> WrittenArchive:
    """Write what pixi-pack writes for the same packages: the fetched files, nothing staged."""
    the_plan = opened.plan
    _refuse_problems(the_plan, reporter)
    for package in the_plan.pypi:
        if package.action == "build":
            msg = f"pixi-pack archives carry wheels only, and {package.name} must be built"
            raise InputError(msg, hint=f"lock a wheel, or pass --skip-pypi {package.name}")
    fetched = opened.fetch(request.jobs)
    wheels = [(s.package, s.path) for s in fetched.pypi]
    with atomic_output(request.output) as sink:
        write_pixi_pack(platform=the_plan.subdir, conda=fetched.conda, wheels=wheels, sink=sink)
    inventory = tuple(_archived_inventory(fetched.conda, fetched.pypi))
    return WrittenArchive(request.output, publish_sha256(request.output), None, inventory=inventory)


def _write_environment(
    opened: OpenedSource, request: PackRequest, reporter: Reporter
) -> WrittenArchive:
    """Fetch, stage, seal and write what the opened source plans (portenv or plain archive)."""
    the_plan = opened.plan
    _refuse_problems(the_plan, reporter)
    if request.glibc is not None:  # what is known now is refused before any download
        refuse_above_ceiling(opened.glibc_sources(limit=8), request.glibc)
    fetched = opened.fetch(request.jobs)
    inputs = opened.seal_inputs(fetched) if request.reuse_sealed else None
    if inputs is not None:
        inputs = {**inputs, "allow_missing": sorted(request.allow_missing), "glibc": request.glibc}
    job = ArchiveJob(
        fetched.conda,
        the_plan.subdir,
        request.output,
        request.env_name,
        chosen(request.compression),
        request.level,
        _cache_of(request),
        lock_glibc=the_plan.lock_glibc,
        base_python=opened.base,
        seal_key=inputs,
        allow_missing=request.allow_missing,
        glibc=request.glibc,
        bytecode=request.bytecode,
        unchecked=opened.unchecked,
        entry=request.entry,
        plain=plain_format(request.format),
        dereference=request.dereference,
    )
    return stage_seal_write(
        job,
        lambda staged: opened.wheels(fetched, staged),
        lambda wheels: opened.inventory(fetched, wheels),
        reporter,
    )


def refuse_conflicts(request: PackRequest) -> None:
    """Options that do not apply to what is packed are refused, never silently ignored."""
    check_plain_options(request.format, request.output, request, request.compression)
    if request.format != "pixi-pack":
        if request.inject:
            msg = "--inject adds packages to pixi-pack archives only"
            raise UsageError(msg, hint="pass --format pixi-pack, or add the package to the project")
        return
    ignored = [
        option
        for option, given in (
            ("--python (or -r, --with, --project)", isinstance(request.source, PythonRequest)),
            ("--entry", bool(request.entry)),
            ("--env-name", request.env_name != "env"),
            ("--compression", request.compression is not None),
            ("--level", request.level is not None),
            ("--no-reuse", not request.reuse_sealed),
            ("--no-bytecode", not request.bytecode),
            ("--allow-missing-library", bool(request.allow_missing)),
            ("--glibc", request.glibc is not None),
        )
        if given
    ]
    if ignored:
        msg = f"{', '.join(ignored)}: not for --format pixi-pack (it holds the lock's packages)"
        raise UsageError(msg, hint="drop them, or drop --format pixi-pack for a portenv archive")


def _pip_wheels(
    staged: StagedPrefix, base: BaseInterpreter, the_plan: Plan, reporter: Reporter
) -> list[FetchedWheel]:
    """pip (and setuptools before 3.12) from the interpreter's ensurepip, unless required."""
    from portenv.stage.ensurepip import ensurepip_wheels

    required = {p.name for p in the_plan.pypi if p.action in ("install", "build")}
    wheels, missing = ensurepip_wheels(staged, base, required)
    for name in missing:
        reporter.on_warning(f"{base.executable} bundles no {name} wheel: the env has no {name}")
    return wheels


def _extracted(source: PythonRequest, base: BaseInterpreter) -> str | None:
    """The scratch folder a python-build-standalone archive was extracted into, if any."""
    from portenv.stage.cpython_archive import is_python_archive

    return str(base.prefix) if is_python_archive(source.python) else None


def python_seal_inputs(
    source: PythonRequest,
    base: BaseInterpreter,
    the_plan: Plan,
    pypi_sources: Sequence[PypiSource],
) -> dict[str, object] | None:
    """What a --python prefix is made from: the interpreter, the requirements, pip or not.

    The interpreter is named by its path and version (an archive by its digest): every file
    copied from it is checked again before reuse (seal.cache), so a changed stdlib, libpython
    or bundled system library makes a new entry.
    """
    from portenv.stage.cpython_archive import is_python_archive

    inputs = seal_inputs(the_plan, (), pypi_sources)
    if inputs is None:
        return None
    identity: dict[str, object] = {"executable": str(base.executable)}
    if is_python_archive(source.python):
        identity = {"archive": str(source.python.resolve()), "sha256": file_digest(source.python)}
    return {**inputs, "python": {**identity, "version": list(base.version)}, "pip": source.pip}

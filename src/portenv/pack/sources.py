"""Which source: a pixi lock, a CPython + requirements, or a pixi-pack archive, each opened once.

The protocol lives in the runner's package, not in source/: answering needs the stages after
the plan (fetch, a portable interpreter from stage/, the inventory from seal/), and a module may
import only from its own stage or an earlier one (tests/unit/test_layers.py).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from portenv.errors import InputError, StageError, UsageError
from portenv.fetch import (
    cache_path,
    fetch_conda,
    fetch_pypi,
    file_digest,
    resolve_location,
)
from portenv.model import FetchedPackage, Plan, PypiSource, StagedPrefix, Subdir
from portenv.platforms import arch_of, host_subdir
from portenv.reporting import NullReporter, Reporter
from portenv.source import PixiProject, plan_pixi_project
from portenv.source.glibc import plan_glibc_sources
from portenv.source.inject import inject
from portenv.source.pixi import stale_lock_warnings
from portenv.source.pixipack import PixiPack, open_pixi_pack, read_metadata
from portenv.source.pypi import decide, editable_notes, wheel_misfit
from portenv.source.requirements import (
    requirement_notes,
    resolve_requirements,
)

if TYPE_CHECKING:
    from portenv.stage.cpython import BaseInterpreter
    from portenv.stage.wheels import FetchedWheel

from portenv.pack.request import (
    PixiPackRequest,
    PlanRequest,
    PythonRequest,
    SourceRequest,
    default_cache,
)

__all__ = [
    "Fetched",
    "OpenedLock",
    "OpenedPixiPack",
    "OpenedPython",
    "OpenedSource",
    "PixiLockSource",
    "PixiPackSource",
    "PythonSource",
    "Source",
    "archived_inventory",
    "base_interpreter",
    "cached_capacity",
    "pixi_pack_inventory",
    "plan",
    "python_seal_inputs",
    "refuse_problems",
    "seal_inputs",
    "source_for",
]


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


def refuse_problems(the_plan: Plan, reporter: Reporter) -> None:
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


def archived_inventory(
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

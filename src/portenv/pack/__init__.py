"""The pipeline end to end: source -> plan -> fetch -> stage -> seal -> write.

`pack` asks two questions once each: which source (`source_for`: a pixi lock, a CPython +
requirements, a pixi-pack archive) and which writer (portenv or plain archive, which stage
and seal; pixi-pack, which writes the fetched files as they are).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from portenv.errors import InputError, OutputError, UsageError
from portenv.pack.chain import (
    ArchiveJob,
    stage_seal_write,
)
from portenv.pack.request import (
    PackRequest,
    PixiPackRequest,
    PlanRequest,
    PythonRequest,
    SourceRequest,
    check_entry_option,
    check_env_name,
    check_glibc_option,
    check_output,
    default_cache,
)
from portenv.pack.sources import (
    Fetched,
    OpenedSource,
    PixiLockSource,
    PixiPackSource,
    PythonSource,
    Source,
    archived_inventory,
    cached_capacity,
    pixi_pack_inventory,
    plan,
    python_seal_inputs,
    refuse_problems,
    seal_inputs,
    source_for,
)
from portenv.reporting import NullReporter, Reporter
from portenv.source.glibc import refuse_above_ceiling
from portenv.write import (
    WrittenArchive,
    atomic_output,
    publish_sha256,
)
from portenv.write.codecs import check_level, chosen
from portenv.write.pixipack import write_pixi_pack
from portenv.write.plain import check_plain_options, plain_format
from portenv.write.sbom import publish_sbom, sbom_timestamp

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
    refuse_problems(the_plan, reporter)
    for package in the_plan.pypi:
        if package.action == "build":
            msg = f"pixi-pack archives carry wheels only, and {package.name} must be built"
            raise InputError(msg, hint=f"lock a wheel, or pass --skip-pypi {package.name}")
    fetched = opened.fetch(request.jobs)
    wheels = [(s.package, s.path) for s in fetched.pypi]
    with atomic_output(request.output) as sink:
        write_pixi_pack(platform=the_plan.subdir, conda=fetched.conda, wheels=wheels, sink=sink)
    inventory = tuple(archived_inventory(fetched.conda, fetched.pypi))
    return WrittenArchive(request.output, publish_sha256(request.output), None, inventory=inventory)


def _write_environment(
    opened: OpenedSource, request: PackRequest, reporter: Reporter
) -> WrittenArchive:
    """Fetch, stage, seal and write what the opened source plans (portenv or plain archive)."""
    the_plan = opened.plan
    refuse_problems(the_plan, reporter)
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
            ("--bytecode", request.bytecode != "all"),
            ("--allow-missing-library", bool(request.allow_missing)),
            ("--glibc", request.glibc is not None),
        )
        if given
    ]
    if ignored:
        msg = f"{', '.join(ignored)}: not for --format pixi-pack (it holds the lock's packages)"
        raise UsageError(msg, hint="drop them, or drop --format pixi-pack for a portenv archive")

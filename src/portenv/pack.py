"""The pipeline end to end: source -> plan -> fetch -> stage -> seal -> write."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from portenv.errors import InputError, OutputError
from portenv.fetch import cache_path, fetch_conda
from portenv.model import FetchedPackage, Plan
from portenv.reporting import NullReporter, Reporter
from portenv.seal import seal
from portenv.source import PixiProject, plan_pixi_project
from portenv.stage import prefix_capacity, stage
from portenv.write import WrittenArchive, write_archive, writer_for

__all__ = ["PackRequest", "PlanRequest", "cached_capacity", "default_cache", "pack", "plan"]


def default_cache() -> Path:
    """The per-user cache shared by every project."""
    return Path(platformdirs.user_cache_dir("portenv"))


@dataclass(frozen=True)
class PlanRequest:
    """What to read: a project, one of its environments, one platform."""

    project: Path
    environment: str = "default"
    platform: str | None = None


@dataclass(frozen=True)
class PackRequest:
    """What to pack and where to write it."""

    source: PlanRequest
    output: Path
    cache: Path | None = None
    env_name: str = "env"
    level: int = 6
    jobs: int = 8


def plan(request: PlanRequest) -> Plan:
    """List what packing would take, without downloading anything."""
    project = PixiProject.from_path(request.project)
    return plan_pixi_project(project, environment=request.environment, platform=request.platform)


def cached_capacity(the_plan: Plan, cache: Path | None = None) -> int | None:
    """The longest destination path, if every package is already cached (plan never downloads)."""
    cache = (cache or default_cache()).resolve()
    fetched = []
    for package in the_plan.conda:
        path = cache_path(cache, package) if (package.sha256 or package.md5) else None
        if path is None or not path.is_file():
            return None
        fetched.append(FetchedPackage(package, path))
    return prefix_capacity(fetched)


def _check_output(output: Path, cache: Path) -> None:
    writer_for(output)
    parent = output.resolve().parent
    if not parent.is_dir():
        msg = f"output folder does not exist: {parent}"
        raise OutputError(msg, hint="create it first, or choose another -o")
    if parent == cache or cache in parent.parents:
        msg = f"output {output} is inside the cache folder {cache}"
        raise OutputError(msg, hint="write the archive somewhere else")


def _check_env_name(name: str) -> None:
    if not name or "/" in name or name in {".", ".."} or name.startswith("-"):
        msg = f"invalid environment folder name: {name!r}"
        raise InputError(msg, hint="use a plain folder name such as env")


def pack(request: PackRequest, reporter: Reporter | None = None) -> WrittenArchive:
    """Pack one environment of a project into `request.output`."""
    reporter = reporter or NullReporter()
    cache = (request.cache or default_cache()).resolve()
    _check_output(request.output, cache)
    _check_env_name(request.env_name)
    the_plan = plan(request.source)
    if the_plan.problems:
        first = the_plan.problems[0]
        more = f" (and {len(the_plan.problems) - 1} more)" if len(the_plan.problems) > 1 else ""
        msg = f"cannot pack {the_plan.environment} for {the_plan.platform}: {first}{more}"
        raise InputError(msg, hint="`portenv plan` lists every problem")
    fetched = fetch_conda(
        the_plan.conda, cache, base=the_plan.project_dir, reporter=reporter, jobs=request.jobs
    )
    capacity = prefix_capacity(fetched)
    staging_root = cache / "staging"
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=staging_root, prefix="env-"))
    try:
        token = reporter.on_task_start(f"installing {len(fetched)} packages", None)
        staged = stage(
            fetched,
            staging / "prefix",
            subdir=the_plan.subdir,
            rattler_cache=cache / "rattler",
            prefix_max=capacity,
        )
        reporter.on_task_complete(token)
        depends = [d for f in fetched for d in f.package.depends]
        sealed = seal(staged, lock_glibc=the_plan.lock_glibc, depends=depends)
        return write_archive(
            sealed,
            request.output,
            env_name=request.env_name,
            level=request.level,
            reporter=reporter,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)

"""`install` and `run`: a local environment under .pixi/envs/<env>, as pixi lays it out.

Packages come through portenv's verified cache (the one `pack` uses), conda packages are
linked by rattler into the real prefix and PyPI wheels are installed with the same
installer code as packing, only with the real interpreter path instead of a placeholder.
A small stamp in conda-meta records which lock content the environment holds, so `run`
reinstalls only when the lock changed. An environment is rebuilt from scratch rather than
patched: simple, and a failed install leaves no stamp, so the next run retries.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from portenv import _rattler
from portenv.author.commands import LockRequest, default_cache, lock
from portenv.errors import ResolveError, StageError
from portenv.fetch import fetch_conda, fetch_pypi
from portenv.model import CondaPackage, PypiPackage, PypiSource, StagedPrefix, Subdir
from portenv.platforms import host_subdir
from portenv.project.check import lock_names
from portenv.project.environments import EnvironmentSpec, environments
from portenv.project.lockfile import read_state
from portenv.project.manifest import Manifest
from portenv.reporting import NullReporter, Reporter
from portenv.source.pypi import decide
from portenv.stage.build import build_wheel
from portenv.stage.wheels import FetchedWheel, install_wheels

__all__ = ["InstallRequest", "InstallResult", "environment_prefix", "install"]

STAMP = "conda-meta/portenv"


@dataclass(frozen=True)
class InstallRequest:
    """`portenv install [-e ENV]`."""

    project: Path
    environment: str = "default"
    cache: Path | None = None


@dataclass(frozen=True)
class InstallResult:
    """The environment's prefix; `installed` is False when it was already up to date."""

    prefix: Path
    installed: bool
    relocked: bool
    subdir: str


def environment_prefix(root: Path, environment: str) -> Path:
    """Where pixi (and portenv) put an environment of a workspace."""
    return root / ".pixi" / "envs" / environment


def _spec(manifest: Manifest, name: str) -> EnvironmentSpec:
    envs = environments(manifest)
    for env in envs:
        if env.name == name:
            return env
    have = ", ".join(e.name for e in envs)
    msg = f"environment {name} is not defined in {manifest.path.name} (it has: {have})"
    raise ResolveError(msg, hint="pass one of them with -e")


def _host_platform(env: EnvironmentSpec) -> str:
    subdir = host_subdir()
    for platform in env.platforms:
        if platform.subdir == subdir:
            return platform.name
    msg = f"environment {env.name} is not locked for this machine's platform {subdir}"
    raise ResolveError(msg, hint=f"add it to the workspace platforms: {subdir}")


def _stamp(content: _rattler.LockedEnvironmentContent, platform: str) -> str:
    """A digest of exactly what the lock holds for this environment and platform."""
    conda = sorted(f"{p.url} {p.sha256 or p.md5}" for p in content.conda.get(platform, ()))
    pypi = sorted(f"{d.location} {d.sha256}" for d in content.pypi.get(platform, ()))
    return hashlib.sha256("\n".join([*conda, "", *pypi]).encode()).hexdigest()


def install(request: InstallRequest, reporter: Reporter | None = None) -> InstallResult:
    """Create or update `.pixi/envs/<env>` from the lock, locking first if it is stale."""
    reporter = reporter or NullReporter()
    cache = (request.cache or default_cache()).resolve()
    relocked = lock(LockRequest(request.project, cache=cache), reporter).changed
    manifest = Manifest.from_path(request.project)
    env = _spec(manifest, request.environment)
    platform = _host_platform(env)
    state = read_state(manifest.root / "pixi.lock")
    lock_name = lock_names(env.platforms, state)[platform]
    content = state.environments[env.name]
    prefix = environment_prefix(manifest.root, env.name)
    subdir = next(p.subdir for p in env.platforms if p.name == platform)
    stamp = _stamp(content, lock_name)
    stamp_file = prefix / STAMP
    if stamp_file.is_file() and json.loads(stamp_file.read_text())["lock"] == stamp:
        return InstallResult(prefix, False, relocked, subdir)
    shutil.rmtree(prefix, ignore_errors=True)
    prefix.mkdir(parents=True)
    token = reporter.on_task_start(f"installing {env.name} into {prefix}", None)
    _install_conda(content.conda.get(lock_name, ()), prefix, subdir, manifest.root, cache)
    _install_pypi(content.pypi.get(lock_name, ()), prefix, subdir, manifest.root, cache)
    reporter.on_task_complete(token)
    stamp_file.write_text(json.dumps({"environment": env.name, "lock": stamp}) + "\n")
    return InstallResult(prefix, True, relocked, subdir)


def _install_conda(
    packages: Sequence[CondaPackage], prefix: Path, subdir: str, root: Path, cache: Path
) -> None:
    fetched = fetch_conda(packages, cache, base=root)
    _rattler.install(fetched, prefix, subdir=subdir, cache_dir=cache / "rattler")


def _python(prefix: Path) -> str:
    found = sorted(prefix.glob("bin/python3.*"))
    names = [p.name for p in found if p.name.removeprefix("python3.").isdigit()]
    if not names:
        msg = f"the environment in {prefix} has no bin/python3.X for its PyPI packages"
        raise StageError(msg, hint="add python to the environment's conda dependencies")
    return f"bin/{names[0]}"


def _install_pypi(
    dists: Sequence[_rattler.PypiEntry], prefix: Path, subdir: str, root: Path, cache: Path
) -> None:
    if not dists:
        return
    staged = StagedPrefix(prefix, str(prefix), Subdir(subdir), _python(prefix))
    major, minor = staged.python.removeprefix("bin/python").split(".")
    packages = [
        decide(
            PypiPackage(d.name, d.version, d.location, _rattler.pypi_kind(d.location), d.sha256),
            python_version=(int(major), int(minor)),
            subdir=subdir,
            host_subdir=subdir,
        )
        for d in dists
    ]
    for package in packages:
        if package.action == "refuse":
            msg = f"cannot install PyPI package {package.name}: {package.reason}"
            raise StageError(msg, hint="re-lock, or change the dependency")
    sources = fetch_pypi(packages, root, cache)
    install_wheels([_wheel(s, staged, root, cache) for s in sources], staged)


def _wheel(source: PypiSource, staged: StagedPrefix, root: Path, cache: Path) -> FetchedWheel:
    """A wheel for one locked package: fetched, or built from its sdist, tree or commit."""
    package = source.package
    path = build_wheel(source, staged, cache) if package.action == "build" else source.path
    url = package.url if "://" in package.url else (root / package.url).resolve().as_uri()
    return FetchedWheel(source, path, url)

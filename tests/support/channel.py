"""A local, file:// conda channel for the test suite, and pixi projects locked against it.

conda-forge is unreachable from the development machines and from CI, so the tests build
their own channel with py-rattler-build from the recipes in ``tests/support/recipes``:
``python`` (a real CPython made relocatable, see ``pyrelocate``), ``greet`` (binary prefix
placeholder), ``libfoo``/``libbar`` (shared libraries and a run dependency) and ``hello-py``
(``noarch: python`` with an entry point). The channel is cached outside the repository,
keyed by a hash over everything that goes into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import rattler
import rattler_build
from rattler_build.progress import (
    BuildStepEvent,
    DownloadCompleteEvent,
    DownloadProgressEvent,
    DownloadStartEvent,
    LogEvent,
    ProgressCallback,
)

from portenv import _rattler
from portenv.project.environments import virtual_packages as default_virtual_packages
from portenv.project.lockfile import LockState, write_state
from tests.support import pyrelocate
from tests.support.host import cache_root, locked

RECIPES = Path(__file__).resolve().parent / "recipes"
#: Build order matters: libbar needs libfoo in its host env, hello-py needs python.
PACKAGES = ("python", "greet", "libfoo", "libbar", "hello-py")
SUBDIRS = ("linux-64", "noarch")
MANIFEST = "portenv-test-channel.json"

_T = TypeVar("_T")


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run one rattler coroutine to completion from synchronous test code."""
    return asyncio.run(coro)


def _tool_version(argv: Sequence[str]) -> str:
    """A tool's version line, or '' if it is missing (part of the cache key)."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return proc.stdout.strip()


def channel_key(base: pyrelocate.BasePython) -> str:
    """Hash every input of the channel so a changed recipe or interpreter rebuilds it."""
    digest = hashlib.sha256()
    inputs: list[tuple[str, bytes]] = [
        (f"recipes/{p.relative_to(RECIPES).as_posix()}", p.read_bytes())
        for p in sorted(RECIPES.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    ]
    inputs += [
        ("channel.py", Path(__file__).read_bytes()),
        ("pyrelocate.py", Path(pyrelocate.__file__).read_bytes()),
        ("python", f"{base.version} {base.prefix}".encode()),
        ("rattler-build", rattler_build.rattler_build_version().encode()),
        ("gcc", _tool_version(["gcc", "-dumpfullversion"]).encode()),
    ]
    for name, data in inputs:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def build_local_channel() -> Path:
    """Build (or reuse from cache) a file:// conda channel with linux-64 + noarch, indexed."""
    base = pyrelocate.find_base_python()
    key = channel_key(base)
    root = cache_root()
    final = root / f"channel-{key}"
    if _is_complete(final):
        return final
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / "build.lock"):
        if _is_complete(final):  # another process built it while we waited
            return final
        _remove_leftovers(root)
        with tempfile.TemporaryDirectory(dir=root, prefix=f".building-{key[:16]}-") as tmp:
            channel = _build_into(Path(tmp), base, key)
            os.rename(channel, final)  # atomic: a crash never leaves a half channel
    return final


def _is_complete(channel: Path) -> bool:
    """A channel dir only ever appears complete (renamed into place), so existence is enough."""
    return (channel / MANIFEST).is_file()


def _remove_leftovers(root: Path) -> None:
    """Delete temp dirs of crashed builds (we hold the one build lock, so none is live)."""
    for stale in root.glob(".building-*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def _patchelf_on_path() -> Iterator[None]:
    """rattler-build shells out to patchelf to relink absolute RPATHs and fails without it."""
    saved = os.environ.get("PATH", "")
    patchelf_dir = str(Path(pyrelocate.patchelf_binary()).parent)
    os.environ["PATH"] = os.pathsep.join([patchelf_dir, saved])
    try:
        yield
    finally:
        os.environ["PATH"] = saved


def _build_into(tmp: Path, base: pyrelocate.BasePython, key: str) -> Path:
    """Build all packages under ``tmp`` and return the indexed channel directory."""
    stage = pyrelocate.relocate_python(base, tmp / "python-stage")
    recipes = tmp / "recipes"
    shutil.copytree(RECIPES, recipes)  # rattler-build must never write into the repo
    context: dict[str, str] = {
        "python_version": base.version,
        "python_stage": str(stage),
        "build_string": f"h{key[:7]}_0",
        "cc": "gcc",
    }
    out = tmp / "out"
    with _patchelf_on_path():
        built = [_build_recipe(recipes / name / "recipe.yaml", out, context) for name in PACKAGES]
    channel = tmp / "channel"
    _collect(built, channel)
    _write_manifest(channel, base, key, built)
    return channel


class _LogTail(ProgressCallback):
    """Keeps rattler-build's log lines: its BuildError alone says only 'Script failed'."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def on_log(self, event: LogEvent) -> None:
        """Collect one log event (info and above)."""
        self.lines.append(str(event.message))

    def on_download_start(self, event: DownloadStartEvent) -> None:
        """Offline builds download nothing worth reporting."""
        return None

    def on_download_progress(self, event: DownloadProgressEvent) -> None:
        """Offline builds download nothing worth reporting."""
        return None

    def on_download_complete(self, event: DownloadCompleteEvent) -> None:
        """Offline builds download nothing worth reporting."""
        return None

    def on_build_step(self, event: BuildStepEvent) -> None:
        """Steps are in the log already."""
        return None

    def tail(self, count: int = 60) -> str:
        """The last ``count`` lines, for an error message."""
        return "\n".join(self.lines[-count:])


def _build_recipe(recipe: Path, out: Path, context: dict[str, str]) -> Path:
    """Build one recipe offline; ``out`` doubles as the channel for host dependencies."""
    render = rattler_build.RenderConfig(
        platform=rattler_build.PlatformConfig(target_platform="linux-64"),
        extra_context=dict(context),
    )
    variant = rattler_build.Stage0Recipe.from_file(recipe).render(render_config=render)[0]
    log = _LogTail()
    try:
        result = variant.run_build(
            tool_config=rattler_build.ToolConfiguration(test_strategy="skip"),
            output_dir=out,
            channels=[out.as_uri()],
            progress_callback=log,
            no_include_recipe=True,
            package_format="conda",
        )
    except rattler_build.RattlerBuildError as exc:
        msg = f"building {recipe.parent.name} failed: {exc}\n{log.tail()}"
        raise RuntimeError(msg) from exc
    packages: list[Path] = [Path(p) for p in result.packages]
    return packages[0]


def _collect(packages: list[Path], channel: Path, subdirs: Sequence[str] = SUBDIRS) -> None:
    """Copy only the package files (no build dirs or logs) into a fresh channel and index it."""
    for subdir in subdirs:
        (channel / subdir).mkdir(parents=True)
    for package in packages:
        target = channel / package.parent.name / package.name
        shutil.copyfile(package, target)
        target.chmod(0o644)  # rattler-build writes 0600; tests may run as another user
    _run(rattler.index.index_fs(channel, write_zst=False, write_shards=False))


def _write_manifest(
    channel: Path, base: pyrelocate.BasePython, key: str, packages: list[Path]
) -> None:
    """Record what the channel was built from (also the 'build is complete' marker)."""
    manifest = {
        "key": key,
        "python_version": base.version,
        "python_source": str(base.prefix),
        "packages": sorted(f"{p.parent.name}/{p.name}" for p in packages),
    }
    (channel / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


# --- projects ------------------------------------------------------------------------


def virtual_packages(platform: str) -> list[rattler.GenericVirtualPackage]:
    """Model a target machine as pixi does by default (portenv's own defaults, in src)."""
    found = []
    for text in default_virtual_packages(platform, {}):
        name, _, rest = text.partition("=")
        version, _, build = rest.partition("=")
        found.append(
            rattler.GenericVirtualPackage(
                rattler.PackageName(name),
                rattler.Version(version),
                rattler.BuildString(build or "0"),
            )
        )
    return found


def solve(channel: Path, specs: Sequence[str], platform: str) -> list[rattler.RepoDataRecord]:
    """Solve ``specs`` against the channel with portenv's solver (a fresh Gateway per call)."""
    solved = _rattler.solve(
        [channel.as_uri()],
        list(specs),
        subdir=platform,
        virtual_packages=default_virtual_packages(platform, {}),
    )
    return [package.record for package in solved]


def lock_platform(platform: str) -> _rattler.LockedPlatform:
    """A lock platform with the virtual packages pixi (and portenv) record for it."""
    return _rattler.LockedPlatform(platform, platform, default_virtual_packages(platform, {}))


def write_project(
    project_dir: Path,
    channel: Path,
    specs: list[str],
    *,
    platform: str = "linux-64",
    environments: dict[str, list[str]] | None = None,
) -> Path:
    """Write pixi.toml and a pixi.lock solved against ``channel``; return ``project_dir``.

    ``environments`` adds named environments (name -> specs), each locked from its own
    specs only (pixi.toml declares them with ``no-default-feature = true`` to match).
    The lock is solved and written by portenv's own code (``portenv.author``).
    """
    extra = dict(environments or {})
    if "default" in extra:
        msg = "'default' is the environment of `specs`; name extra environments otherwise"
        raise ValueError(msg)
    project_dir.mkdir(parents=True, exist_ok=True)
    solved = {name: solve(channel, s, platform) for name, s in {"default": specs, **extra}.items()}
    (project_dir / "pixi.toml").write_text(
        pixi_toml(project_dir.name, channel, platform, specs, extra)
    )
    state = LockState(
        (lock_platform(platform),),
        {
            name: _rattler.LockedEnvironmentContent(
                channels=(channel.as_uri(),),
                conda={platform: tuple(_rattler.conda_package_of(r) for r in records)},
                pypi={},
                sources={},
            )
            for name, records in solved.items()
        },
    )
    write_state(project_dir / "pixi.lock", state, project_dir)
    return project_dir


def _toml_str(value: str) -> str:
    """A TOML basic string (JSON escaping is a valid subset for these values)."""
    return json.dumps(value)


def _toml_key(value: str) -> str:
    """A bare key when TOML allows one (as people write pixi.toml), else a quoted one."""
    return value if re.fullmatch(r"[A-Za-z0-9_-]+", value) else _toml_str(value)


def _dependency_lines(specs: Sequence[str]) -> list[str]:
    """``name = "version"`` lines (inline tables when a build string is pinned)."""
    lines: list[str] = []
    for spec in specs:
        match = rattler.MatchSpec(spec)
        name = match.name.normalized
        version = str(match.version) if match.version is not None else "*"
        if match.build is not None:
            lines.append(
                f"{_toml_key(name)} = {{ version = {_toml_str(version)}, "
                f"build = {_toml_str(str(match.build))} }}"
            )
        else:
            lines.append(f"{_toml_key(name)} = {_toml_str(version)}")
    return lines


def pixi_toml(
    name: str,
    channel: Path,
    platform: str,
    specs: Sequence[str],
    environments: dict[str, list[str]],
) -> str:
    """Render the manifest that matches the lock ``write_project`` writes."""
    lines = [
        "[workspace]",
        f"name = {_toml_str(name)}",
        f"channels = [{_toml_str(channel.as_uri())}]",
        f"platforms = [{_toml_str(platform)}]",
        "",
        "[dependencies]",
        *_dependency_lines(specs),
    ]
    for env in environments:
        lines += ["", f"[feature.{_toml_key(env)}.dependencies]"]
        lines += _dependency_lines(environments[env])
    if environments:
        lines += ["", "[environments]"]
        lines += [
            f"{_toml_key(env)} = {{ features = [{_toml_str(env)}], no-default-feature = true }}"
            for env in environments
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    """``python -m tests.support.channel``: build the channel, print its path."""
    print(build_local_channel())
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # rattler's Rust runtime may segfault at interpreter exit (FIELD-NOTES)

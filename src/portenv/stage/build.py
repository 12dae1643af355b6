"""Build sdists (and source trees) into wheels with the staged interpreter, cached by input hash."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from portenv._uv import run_uv
from portenv.errors import StageError
from portenv.model import PypiSource, StagedPrefix

__all__ = ["build_wheel"]


def build_wheel(source: PypiSource, staged: StagedPrefix, cache: Path) -> Path:
    """A wheel built from `source` (an sdist, a folder, a checkout) for the staged python,
    reused from the cache when built before (never for a folder, whose files may change).

    uv builds in an isolated environment made with the staged interpreter, so the wheel's tags
    are the environment's, not the build machine's Python's.
    """
    python_tag = Path(staged.python).name
    folder = cache / "built" / f"{source.key}-{python_tag}"
    if source.origin == "folder":  # a local source tree can change: never reuse
        shutil.rmtree(folder, ignore_errors=True)
    built = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if built:
        return built[0]
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".build-"))
    try:
        argv = ["build", "--wheel", "--quiet", "--no-config"]
        argv += [
            "--python",
            str(staged.path / staged.python),
            "--out-dir",
            str(scratch),
            str(source.path),
        ]
        done = run_uv(argv)
        wheels = sorted(scratch.glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            last = (done.stderr.strip().splitlines() or ["no wheel was produced"])[-1]
            msg = f"building a wheel from {source.path.name} failed: {last}"
            raise StageError(msg, hint="lock a pre-built wheel, or skip it with --skip-pypi NAME")
        shutil.rmtree(folder, ignore_errors=True)  # a build that raced this one
        os.replace(scratch, folder)
        return folder / wheels[0].name
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

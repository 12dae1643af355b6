"""portenv's build backend: setuptools', except that a wheel must carry portenv-unzstd.

The default archive carries portenv-unzstd for its arch. The binaries are package data that git
does not hold (scripts/build-unzstd.sh builds them from zstd's source), so a wheel built from
a checkout or an sdist without them would make a portenv that cannot write its default
archive. build_wheel runs the script when any is missing and stops in one line if that fails.
Editable installs read the package data from src/ and are left as setuptools makes them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from setuptools.build_meta import (
    build_editable,
    build_sdist,
    get_requires_for_build_editable,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)
from setuptools.build_meta import build_wheel as _setuptools_build_wheel

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "ensure_unzstd",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
]

ARCHES = ("x86_64", "aarch64")
"""The arches portenv packs for: a wheel packs for each, wherever it is installed."""
UNZSTD = Path("src", "portenv", "target", "unzstd")
SCRIPT = Path("scripts", "build-unzstd.sh")


def missing_unzstd(root: Path) -> list[str]:
    """The files of portenv-unzstd's package data that `root` lacks, relative to their folder."""
    needed = [Path(arch, "portenv-unzstd") for arch in ARCHES] + [Path("LICENSE-zstd")]
    return [str(path) for path in needed if not (root / UNZSTD / path).is_file()]


def ensure_unzstd(root: Path) -> None:
    """Build portenv-unzstd in the source tree `root` when any piece is missing, or stop the
    build with one line naming the fix (SystemExit: build frontends show it as it is)."""
    if not missing_unzstd(root):
        return
    if not (root / SCRIPT).is_file():
        msg = (
            f"error: this source tree has neither {UNZSTD}/ARCH/portenv-unzstd nor {SCRIPT}:"
            " build the wheel from a git checkout of portenv or its sdist"
        )
        raise SystemExit(msg)
    done = subprocess.run(["sh", str(SCRIPT), *ARCHES], cwd=root, check=False)
    missing = missing_unzstd(root)
    if done.returncode != 0 or missing:
        msg = (
            f"error: a portenv wheel needs {UNZSTD}/ (missing: {', '.join(missing)}), and sh"
            f" {SCRIPT} failed (exit {done.returncode}): do what it says above (the compilers:"
            " sh scripts/install-system-deps.sh --tests), then build again"
        )
        raise SystemExit(msg)


def build_wheel(
    wheel_directory: str,
    config_settings: dict[str, str | list[str]] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """setuptools' wheel, after portenv-unzstd is there (PEP 517 runs this in the source tree)."""
    ensure_unzstd(Path.cwd())
    return str(_setuptools_build_wheel(wheel_directory, config_settings, metadata_directory))

"""The real pixi projects vendored in tests/data/realdata, copied for a test, and the CLI's
error contract.

`run_cli` runs one command in-process through `main(argv)`, the CLI's error boundary (an
exception escaping it is a crash); `check_outcome` is the contract every failure keeps:
a documented exit code, one `error:` line first, at most one `  hint:` line (a stale-lock
listing may follow the error as `  - ` lines), and no traceback.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import tomlkit

from portenv.cli import main

__all__ = [
    "DOCUMENTED_EXIT_CODES",
    "REALDATA",
    "SEEDS",
    "as_pyproject",
    "check_outcome",
    "copied",
    "manifest_name",
    "run_cli",
    "snapshot",
]

REALDATA = Path(__file__).resolve().parents[1] / "data" / "realdata" / "pixi-projects"
"""Real projects written by pixi and people (sources and licences: its README.md)."""
SEEDS = sorted(p.name for p in REALDATA.iterdir() if (p / "pixi.lock").is_file())
#: The exit codes README documents for a command that runs to its end (130 is an interrupt).
DOCUMENTED_EXIT_CODES = {0, 1, 2}


def manifest_name(project: Path) -> str:
    """pixi.toml, else pyproject.toml (the order portenv looks for them in)."""
    return "pixi.toml" if (project / "pixi.toml").is_file() else "pyproject.toml"


@contextlib.contextmanager
def copied(seed: str, *, pyproject: bool = False) -> Iterator[Path]:
    """A fresh copy of one real project; with `pyproject`, its pixi.toml as [tool.pixi]."""
    with tempfile.TemporaryDirectory(prefix="portenv-fuzz-") as tmp:
        project = Path(tmp) / seed
        shutil.copytree(REALDATA / seed, project, symlinks=True)
        if pyproject:
            as_pyproject(project)
        yield project


def as_pyproject(project: Path) -> None:
    """Move pixi.toml's tables under [tool.pixi] of a pyproject.toml, as pixi reads them."""
    pixi = tomlkit.parse((project / "pixi.toml").read_text(encoding="utf-8"))
    document = tomlkit.document()
    document["project"] = {"name": project.name, "version": "0.1.0", "dependencies": []}
    document["tool"] = {"pixi": pixi}
    (project / "pyproject.toml").write_text(tomlkit.dumps(document), encoding="utf-8")
    (project / "pixi.toml").unlink()


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes, to prove nothing changed."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def run_cli(argv: list[str]) -> tuple[int, str]:
    """One command through main(); an exception escaping the boundary is a crash."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def check_outcome(argv: list[str], code: int, stderr: str, what: str) -> None:
    """The property every command must keep on any input."""
    context = f"portenv {' '.join(argv)} after {what}:\n{stderr}"
    assert code in DOCUMENTED_EXIT_CODES, context
    assert "Traceback" not in stderr, context
    if code == 0:
        return
    lines = stderr.splitlines()
    assert lines and lines[0].startswith("error: "), context
    hints = [line for line in lines[1:] if line.startswith("  hint: ")]
    listing = [line for line in lines[1:] if line.startswith("  - ")]
    assert len(hints) <= 1 and len(lines) == 1 + len(hints) + len(listing), context
    assert not listing or lines[0].endswith(":"), context

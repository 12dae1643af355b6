"""A project's uv.lock, taken as it is: checked against pyproject.toml, exported as pylock.toml.

uv itself reads its lock (the format is uv's own): ``uv lock --check`` says whether the lock
still satisfies pyproject.toml, and ``uv export --format pylock.toml --frozen`` writes the
locked files with their URLs and sha256 hashes. Both run ``--offline``: a fresh lock needs no
index to be checked or exported, and nothing is re-resolved. A stale lock is refused, since
packing it would ship something other than what pyproject.toml asks for.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import tomlkit
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from tomlkit.exceptions import ParseError

from portenv._uv import run_uv
from portenv.errors import InputError, ResolveError

__all__ = ["check_requires_python", "export_uv_lock"]

_EXPORT = ["--format", "pylock.toml", "--frozen", "--no-dev", "--no-emit-project", "--no-editable"]
"""The runtime dependencies: [project] dependencies, not dev groups, workspace members as
plain folders. The project itself is added as a local folder by the caller, unless told not to."""


def check_requires_python(spec: object, version: Sequence[int], where: str) -> None:
    """Refuse a lock whose ``requires-python`` excludes the interpreter being packed."""
    if not isinstance(spec, str) or not spec.strip():
        return
    try:
        allowed = SpecifierSet(spec)
    except InvalidSpecifier as exc:
        msg = f"{where} has an invalid requires-python: {spec!r}"
        raise InputError(msg, hint="fix the lock file") from exc
    full = ".".join(map(str, version))
    if not allowed.contains(full, prereleases=True):
        msg = f"{where} is for Python {spec}, but the interpreter is Python {full}"
        raise InputError(msg, hint="pass --python with an interpreter the lock allows")


def _last_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    last = (errors or lines or [f"uv exited with status {done.returncode}"])[-1]
    return last.removeprefix("error:").strip()


def _check_fresh(project: Path, interpreter: Path | None) -> None:
    argv = ["lock", "--check", "--offline"]
    argv += ["--python", str(interpreter)] if interpreter is not None else []
    done = run_uv(argv, cwd=project)
    if done.returncode == 0:
        return
    reason, project = _last_error(done), project.resolve()
    # uv resolves only when the lock does not satisfy pyproject.toml; offline, a dependency
    # added since and not in uv's cache makes that resolution fail instead of differ.
    if "needs to be updated" in done.stderr or "No solution found" in done.stderr:
        msg = f"uv.lock is stale: it no longer matches {project / 'pyproject.toml'}"
    else:
        msg = f"cannot check uv.lock against pyproject.toml in {project}: {reason}"
    raise InputError(msg, hint=f"run `uv lock` in {project}, then pack again")


def export_uv_lock(
    project: Path, version: Sequence[int], interpreter: Path | None = None
) -> tuple[str, Path]:
    """The pylock.toml text of ``project``'s uv.lock, after checking it is fresh, and the
    folder its relative paths start from (the exported file's, now removed).

    ``interpreter`` is the CPython being packed: uv checks the lock with it, so no other
    Python needs to be on the machine.
    """
    lock = project / "uv.lock"
    try:
        check_requires_python(
            tomlkit.parse(lock.read_text(encoding="utf-8")).get("requires-python"),
            version,
            str(lock),
        )
    except ParseError as exc:
        msg = f"cannot read {lock}: {exc}"
        raise InputError(msg, hint="regenerate it with `uv lock`") from exc
    _check_fresh(project, interpreter)
    with tempfile.TemporaryDirectory(prefix="portenv-uvlock-") as scratch:
        out = Path(scratch).resolve() / "pylock.toml"
        done = run_uv(["export", *_EXPORT, "--offline", "--quiet", "-o", str(out)], cwd=project)
        if done.returncode != 0 or not out.is_file():
            msg = f"uv cannot export {lock} as pylock.toml: {_last_error(done)}"
            raise ResolveError(msg, hint="check the lock with `uv lock --check`")
        return out.read_text(encoding="utf-8"), out.parent

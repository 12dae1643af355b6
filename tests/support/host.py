"""What the fixture builders share on the build host: the test cache folder, a lock between
processes that build into it, and running a host tool with a plain environment."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["CACHE_ENV", "HOST_ENV", "cache_root", "locked", "run_host"]

CACHE_ENV = "PORTENV_TEST_CACHE"
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
"""The environment host tools run with: the system's own tools, untranslated messages."""


def cache_root() -> Path:
    """Where the built fixtures live (channels, rootfs trees, apt states): outside the repo, so
    that a clean checkout stays clean; ``$PORTENV_TEST_CACHE`` or ``~/.cache/portenv-tests``."""
    configured = os.environ.get(CACHE_ENV)
    root = Path(configured).expanduser() if configured else Path.home() / ".cache" / "portenv-tests"
    return root.absolute()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created with its folder): concurrent pytest processes
    wait while one of them builds, then find the result made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_host(
    argv: Sequence[str],
    *,
    what: str,
    cwd: Path | None = None,
    error: type[Exception] = RuntimeError,
) -> str:
    """Run a host tool, return its stdout; `error` names `what` failed and the output's tail."""
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env=HOST_ENV,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
    except FileNotFoundError as exc:
        msg = f"{what}: {argv[0]} not found (run scripts/install-system-deps.sh --tests)"
        raise error(msg) from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        msg = f"{what}: {shlex.join(argv)} exited {proc.returncode}\n{tail}"
        raise error(msg)
    return proc.stdout

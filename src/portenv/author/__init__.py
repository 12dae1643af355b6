"""Author pixi workspaces without pixi: init, add, remove, lock, install, run.

Each command is one function taking one frozen request and returning one result; errors
are `portenv.errors` exceptions with a one-line message and a hint (a solver's or uv's
explanation follows the first line). Only the CLI imports this package.
"""

from __future__ import annotations

from portenv.author.commands import (
    AddRequest,
    AddResult,
    LockRequest,
    LockResult,
    RemoveRequest,
    RemoveResult,
    add,
    lock,
    remove,
)
from portenv.author.create import InitRequest, InitResult, init
from portenv.author.install import InstallRequest, InstallResult, install
from portenv.author.run import RunRequest, RunResult, run

__all__ = [
    "AddRequest",
    "AddResult",
    "InitRequest",
    "InitResult",
    "InstallRequest",
    "InstallResult",
    "LockRequest",
    "LockResult",
    "RemoveRequest",
    "RemoveResult",
    "RunRequest",
    "RunResult",
    "add",
    "init",
    "install",
    "lock",
    "remove",
    "run",
]

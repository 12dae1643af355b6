"""The conda-free source's options (--python, -r, --with, --project, --no-install-project).

They reach a command as one `PythonOptions` value, which `source_request` turns into the
request for the library: a pixi project when none is given, else a CPython + requirements.
"""

from __future__ import annotations

import functools
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from portenv.errors import InputError, UsageError

if TYPE_CHECKING:
    from portenv.pack import PlanRequest, PythonRequest

__all__ = ["PythonOptions", "python_source", "source_request"]


@dataclass(frozen=True)
class PythonOptions:
    """The conda-free source's options, gathered into one value for the commands."""

    python: Path | None
    requirements: tuple[Path, ...]
    project: Path | None
    with_requirements: tuple[str, ...]
    no_install_project: bool

    @property
    def given(self) -> bool:
        """Any of them asks for the conda-free source instead of a pixi project."""
        return bool(self.python or self.requirements or self.project or self.with_requirements)


_PYTHON_OPTIONS = [
    click.option(
        "--python",
        "python",
        type=click.Path(path_type=Path),
        default=None,
        help="Pack this CPython installation (no conda) instead of a pixi project: an "
        "interpreter, or a python-build-standalone archive (.tar.gz, .tar.zst) "
        "(default with -r/--with/--project: the interpreter running portenv).",
    ),
    click.option(
        "-r",
        "--requirement",
        "requirements",
        type=click.Path(path_type=Path),
        multiple=True,
        help="With --python: a requirements file (repeatable; --hash pins are checked; "
        "local paths in it are relative to its folder).",
    ),
    click.option(
        "--with",
        "with_requirements",
        multiple=True,
        metavar="REQ",
        help="With --python: one requirements-file line (repeatable), e.g. ./mypkg, "
        "'-e ./lib', ./dist/x.whl, 'name @ URL'; paths are relative to the current folder.",
    ),
    click.option(
        "--project",
        "python_project",
        type=click.Path(path_type=Path),
        default=None,
        help="With --python: a Python project (pyproject.toml, or its pylock.toml or "
        "uv.lock, taken as locked), installed itself when it has a [build-system].",
    ),
    click.option(
        "--no-install-project",
        "no_install_project",
        is_flag=True,
        help="With --project: pack its dependencies only, not the project itself.",
    ),
]


def python_source(function: Callable[..., None]) -> Callable[..., None]:
    """The options of the conda-free source, passed to `function` as `python_source`."""

    @functools.wraps(function)
    def gathered(*args: object, **kwargs: Any) -> None:
        options = PythonOptions(
            kwargs.pop("python"),
            kwargs.pop("requirements"),
            kwargs.pop("python_project"),
            kwargs.pop("with_requirements"),
            kwargs.pop("no_install_project"),
        )
        function(*args, python_source=options, **kwargs)

    for option in reversed(_PYTHON_OPTIONS):
        gathered = option(gathered)
    return gathered


def source_request(
    project: Path,
    environment: str,
    platform: str | None,
    skip_pypi: tuple[str, ...],
    options: PythonOptions,
) -> PlanRequest | PythonRequest:
    """A pixi project, or with --python (or -r, --with, --project) the conda-free source."""
    from portenv.pack import PlanRequest, PythonRequest
    from portenv.source.requirements import RequirementsInput

    if options.no_install_project and options.project is None:
        msg = "--no-install-project goes with --project DIR"
        raise UsageError(msg, hint="add --project DIR, or drop --no-install-project")
    if not options.given:
        return PlanRequest(project, environment, platform, skip_pypi)
    pixi_only = [f"PROJECT {project}"] if project != Path(".") else []
    pixi_only += [f"-e {environment}"] if environment != "default" else []
    if pixi_only:
        verb, them = ("names", "it") if len(pixi_only) == 1 else ("name", "them")
        msg = f"{' and '.join(pixi_only)} {verb} a pixi project, which --python does not pack"
        raise UsageError(msg, hint=f"drop {them}, or drop --python, -r, --with and --project")
    python = _interpreter(options.python) if options.python else Path(sys.executable)
    inputs = RequirementsInput(
        options.requirements,
        options.project,
        options.with_requirements,
        install_project=not options.no_install_project,
    )
    return PythonRequest(python, inputs, platform, skip_pypi)


def _interpreter(python: Path) -> Path:
    """A path, an archive, or a command name found on PATH (``--python python3``)."""
    from portenv.stage.cpython_archive import ARCHIVE_SUFFIXES

    if python.exists() or "/" in str(python) or python.name.endswith(ARCHIVE_SUFFIXES):
        return python
    found = shutil.which(str(python))
    if found is None:
        msg = f"no interpreter named {python} on PATH"
        raise InputError(msg, hint="pass the path of a CPython executable")
    return Path(found)

"""The authoring commands (init, add, remove, lock, install, run): pixi's workflow without pixi."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import click

__all__ = ["COMMANDS"]

project_opt = click.option(
    "--project",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="The project folder (or its manifest).",
)
cache_opt = click.option(
    "--use-cache",
    "cache",
    type=click.Path(path_type=Path),
    default=None,
    help="Package cache folder (default: the user cache, shared with pack).",
)
platform_opt = click.option(
    "-p", "--platform", "platforms", multiple=True, help="Only for this platform (repeatable)."
)
feature_opt = click.option("--feature", "-f", default=None, help="Edit this feature's tables.")
pypi_opt = click.option("--pypi", is_flag=True, help="PyPI dependencies, not conda ones.")


@click.command("init")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("."), required=False)
@click.option("-c", "--channel", "channels", multiple=True, help="Channel (default conda-forge).")
@click.option("-p", "--platform", "platforms", multiple=True, help="Platform (default: this one).")
@click.option("--pyproject", is_flag=True, help="Write [tool.pixi] into pyproject.toml.")
def init_cmd(
    directory: Path, channels: tuple[str, ...], platforms: tuple[str, ...], pyproject: bool
) -> None:
    """Create a pixi workspace manifest."""
    from portenv.author import InitRequest, init

    result = init(InitRequest(directory, channels, platforms, pyproject))
    sys.stderr.write(f"created {result.manifest}\n")


def edit_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options `add` and `remove` share: which project, which kind, where, which feature."""
    for option in (cache_opt, feature_opt, platform_opt, pypi_opt, project_opt):
        command = option(command)
    return command


def report_edit(verb: str, lines: Sequence[str], lock: Path, lock_changed: bool) -> None:
    """One line per changed dependency, then what happened to the lock."""
    for line in lines:
        sys.stderr.write(f"{verb} {line}\n")
    sys.stderr.write(f"{'updated' if lock_changed else 'kept'} {lock}\n")


@click.command("add")
@click.argument("specs", nargs=-1, required=True)
@edit_options
def add_cmd(
    specs: tuple[str, ...],
    project: Path,
    pypi: bool,
    platforms: tuple[str, ...],
    feature: str | None,
    cache: Path | None,
) -> None:
    """Add dependencies, solve, and update pixi.lock (nothing changes if it cannot be solved)."""
    from portenv.author import AddRequest, add

    result = add(AddRequest(project, specs, pypi, platforms, feature, cache))
    report_edit("added", result.added, result.lock, result.lock_changed)


@click.command("remove")
@click.argument("names", nargs=-1, required=True)
@edit_options
def remove_cmd(
    names: tuple[str, ...],
    project: Path,
    pypi: bool,
    platforms: tuple[str, ...],
    feature: str | None,
    cache: Path | None,
) -> None:
    """Remove dependencies and update pixi.lock."""
    from portenv.author import RemoveRequest, remove

    result = remove(RemoveRequest(project, names, pypi, platforms, feature, cache))
    report_edit("removed", result.removed, result.lock, result.lock_changed)


@click.command("lock")
@project_opt
@click.option("--check", is_flag=True, help="Only check that the lock satisfies the manifest.")
@cache_opt
def lock_cmd(project: Path, check: bool, cache: Path | None) -> None:
    """Solve the manifest and write pixi.lock (keeping pins that still hold)."""
    from portenv.author import LockRequest, lock

    result = lock(LockRequest(project, check, cache))
    if check:
        sys.stderr.write(f"{result.lock} is up to date\n")
    else:
        sys.stderr.write(f"{'wrote' if result.changed else 'unchanged'} {result.lock}\n")


@click.command("install")
@project_opt
@click.option("-e", "--environment", default="default", show_default=True)
@cache_opt
def install_cmd(project: Path, environment: str, cache: Path | None) -> None:
    """Create or update the local env under .pixi/envs/<env>, from the lock."""
    from portenv.author import InstallRequest, install

    result = install(InstallRequest(project, environment, cache))
    sys.stderr.write(f"{'installed' if result.installed else 'up to date'}: {result.prefix}\n")


@click.command(
    "run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@project_opt
@click.option("-e", "--environment", default="default", show_default=True)
@cache_opt
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_cmd(project: Path, environment: str, cache: Path | None, command: tuple[str, ...]) -> None:
    """Run a command in the local env (installing it first if stale); its exit code passes."""
    from portenv.author import RunRequest, run

    result = run(RunRequest(project, command, environment, cache))
    raise click.exceptions.Exit(result.returncode)


COMMANDS = [init_cmd, add_cmd, remove_cmd, lock_cmd, install_cmd, run_cmd]

"""`portenv run`: a command (or a [tasks] entry) in the local environment, exit code passed on.

The environment is made current first (`install`), then activated the way conda and pixi
activate one: PATH starts with the env's bin, CONDA_PREFIX and pixi's PIXI_* variables are
set, the manifest's [activation.env] applies, and the env's own activate.d scripts and
env_vars.d files run, so packages that set variables on activation behave as under pixi.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portenv.author.install import InstallRequest, install
from portenv.errors import InputError
from portenv.project.manifest import Manifest
from portenv.reporting import Reporter

__all__ = ["RunRequest", "RunResult", "activation_environment", "run"]

_SHELL_OWN = ("_", "SHLVL", "PWD", "OLDPWD")


@dataclass(frozen=True)
class RunRequest:
    """`portenv run [-e ENV] COMMAND...`."""

    project: Path
    command: tuple[str, ...]
    environment: str = "default"
    cache: Path | None = None
    cwd: Path | None = None


@dataclass(frozen=True)
class RunResult:
    """The command's exit code (128 + N when signal N ended it, as shells report it)."""

    returncode: int


def _env_vars_d(prefix: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted((prefix / "etc" / "conda" / "env_vars.d").glob("*.json")):
        loaded = json.loads(path.read_text(encoding="utf-8"))
        found.update({str(k): str(v) for k, v in loaded.items()})
    return found


def _activate_d(prefix: Path, environment: Mapping[str, str]) -> dict[str, str]:
    """Source the env's activate.d scripts in sh and take the environment they leave."""
    scripts = sorted((prefix / "etc" / "conda" / "activate.d").glob("*.sh"))
    if not scripts:
        return dict(environment)
    shell = shutil.which("bash") or "/bin/sh"
    body = "".join(f". {shlex.quote(str(s))}\n" for s in scripts) + "env -0\n"
    done = subprocess.run(
        [shell, "-c", body], env=dict(environment), capture_output=True, check=False
    )
    if done.returncode != 0:
        msg = f"the activation scripts of {prefix} failed: {done.stderr.decode().strip()}"
        raise InputError(msg, hint="check the scripts in etc/conda/activate.d")
    pairs = (item.partition("=") for item in done.stdout.decode().split("\0") if item)
    activated = {key: value for key, _, value in pairs}
    for key in _SHELL_OWN:  # the shell's bookkeeping, not the activation's
        activated.pop(key, None)
        if key in environment:
            activated[key] = environment[key]
    return activated


def activation_environment(
    prefix: Path, manifest: Manifest, environment: str, base: Mapping[str, str]
) -> dict[str, str]:
    """The variables a command run in the environment sees."""
    variables = dict(base)
    variables["PATH"] = os.pathsep.join([str(prefix / "bin"), base.get("PATH", os.defpath)])
    variables.update(
        {
            "CONDA_PREFIX": str(prefix),
            "CONDA_SHLVL": "1",
            "CONDA_DEFAULT_ENV": f"{manifest.name()}:{environment}",
            "PIXI_PROJECT_ROOT": str(manifest.root),
            "PIXI_PROJECT_NAME": manifest.name(),
            "PIXI_PROJECT_MANIFEST": str(manifest.path),
            "PIXI_ENVIRONMENT_NAME": environment,
        }
    )
    variables.update(_env_vars_d(prefix))
    variables.update(_manifest_activation(manifest, environment))
    return _activate_d(prefix, variables)


def _features(manifest: Manifest, environment: str) -> list[Mapping[str, Any]]:
    data = manifest.data()
    envs = data.get("environments", {})
    listed = envs.get(environment, [])
    names = listed if isinstance(listed, list) else listed.get("features", [])
    no_default = isinstance(listed, Mapping) and listed.get("no-default-feature", False)
    features = [data.get("feature", {}).get(name, {}) for name in names]
    return features if no_default else [data, *features]


def _manifest_activation(manifest: Manifest, environment: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for feature in _features(manifest, environment):
        found.update({k: str(v) for k, v in feature.get("activation", {}).get("env", {}).items()})
    return found


def _task(manifest: Manifest, environment: str, name: str) -> str | None:
    """A [tasks] entry's command line (a later feature's task overrides the default's)."""
    found: str | None = None
    for feature in _features(manifest, environment):
        task = feature.get("tasks", {}).get(name)
        if isinstance(task, str):
            found = task
        elif isinstance(task, Mapping) and "cmd" in task:
            command = task["cmd"]
            found = command if isinstance(command, str) else shlex.join(command)
    return found


def _argv(manifest: Manifest, environment: str, command: Sequence[str]) -> list[str]:
    task = _task(manifest, environment, command[0])
    if task is None:
        return list(command)
    line = " ".join([task, *(shlex.quote(a) for a in command[1:])])
    return ["/bin/sh", "-c", line]


def run(request: RunRequest, reporter: Reporter | None = None) -> RunResult:
    """Run the command in the environment (installed or updated first)."""
    if not request.command:
        msg = "no command to run"
        raise InputError(msg, hint="e.g. `portenv run python script.py`")
    installed = install(
        InstallRequest(request.project, request.environment, request.cache), reporter
    )
    manifest = Manifest.from_path(request.project)
    variables = activation_environment(installed.prefix, manifest, request.environment, os.environ)
    argv = _argv(manifest, request.environment, request.command)
    executable = shutil.which(argv[0], path=variables["PATH"]) or argv[0]
    try:
        done = subprocess.run([executable, *argv[1:]], env=variables, cwd=request.cwd, check=False)
    except OSError as exc:
        msg = f"cannot run {argv[0]}: {exc.strerror}"
        raise InputError(
            msg, hint="check the command name, or add the package providing it"
        ) from exc
    code = done.returncode
    return RunResult(128 - code if code < 0 else code)

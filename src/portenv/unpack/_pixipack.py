"""Unpack a pixi-pack archive on this machine, as pixi-unpack does, but atomically.

pixi-unpack (Quantco/pixi-pack ``src/unpack.rs``) checks ``pixi-pack.json``, installs the
channel's packages with rattler, the wheels of ``pypi/`` with uv, and writes
``DIR/activate.sh``. Here: the pack is verified first (each package against its repodata
record), rattler installs into a work folder beside the destination with the destination as
the prefix every file names, portenv's wheel installer adds the wheels with the final python
in their launchers, and the environment and ``activate.sh`` are renamed into place last.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from pathlib import Path

from portenv import _rattler
from portenv.errors import CompatibilityError, OutputError, OutputExistsError, StageError
from portenv.model import StagedPrefix
from portenv.reporting import Reporter
from portenv.source.pixipack import PixiPack, PixiPackMetadata, open_pixi_pack, read_metadata
from portenv.stage import DEFAULT_PREFIX_MAX, prefix_capacity
from portenv.stage.wheels import FetchedWheel, install_wheels
from portenv.unpack._host import HostFacts
from portenv.unpack._model import UnpackRequest, UnpackResult
from portenv.unpack._place import (
    Destination,
    Placement,
    check_existing,
    check_path,
    resolve_destination,
    write_failed,
)
from portenv.unpack._portenv import compile_bytecode

__all__ = ["ACTIVATE_SCRIPT", "activation_script", "check_platform", "unpack_pixi_pack"]

ACTIVATE_SCRIPT = "activate.sh"
"""pixi-unpack's activation script for POSIX shells, written beside the environment."""
_HISTORY_NOTE = "# installed by portenv from a pixi-pack archive; conda looks for this file\n"


def check_platform(metadata: PixiPackMetadata, host: HostFacts) -> None:
    """pixi-unpack's rule: the pack's platform is this machine's."""
    if metadata.platform != host.subdir:
        here = host.subdir or host.machine
        msg = f"the pixi-pack archive is for {metadata.platform}, this machine is {here}"
        hint = f"unpack it on a {metadata.platform} machine, or pass --platform-check off"
        raise CompatibilityError(msg, hint=hint)


def _env_vars(prefix: Path) -> dict[str, str]:
    """Variables the packages (``etc/conda/env_vars.d``) and conda-meta/state set."""
    found: dict[str, str] = {}
    sources = sorted((prefix / "etc" / "conda" / "env_vars.d").glob("*.json"))
    for source in [*sources, prefix / "conda-meta" / "state"]:
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        values = data.get("env_vars", data) if source.name == "state" else data
        if isinstance(values, dict):
            found.update({str(k): str(v) for k, v in values.items() if str(k).isidentifier()})
    return found


def activation_script(prefix: Path, final: Path) -> str:
    """The ``activate.sh`` pixi-unpack writes for bash, for an env built at `prefix`.

    Its lines, in rattler's activation order: PATH with the env's bin first, CONDA_SHLVL,
    CONDA_PREFIX, the packages' environment variables, then each
    ``etc/conda/activate.d/*.sh`` script sourced. Every path names `final`.
    """
    lines = [
        f'export PATH="{final}/bin:${{PATH}}"',
        "export CONDA_SHLVL=1",
        f"export CONDA_PREFIX={shlex.quote(str(final))}",
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in _env_vars(prefix).items()]
    scripts = sorted((prefix / "etc" / "conda" / "activate.d").glob("*.sh"))
    lines += [f". {shlex.quote(str(final / s.relative_to(prefix)))}" for s in scripts]
    return "\n".join(lines) + "\n"


def _python(pack: PixiPack, prefix: Path) -> str:
    python = next((f.package for f in pack.conda if f.package.name == "python"), None)
    if python is None:  # open_pixi_pack refuses wheels without python
        msg = "the pixi-pack has wheels but no python package"
        raise StageError(msg, hint="add python to the environment")
    relative = "bin/python" + ".".join(python.version.split(".")[:2])
    if not (prefix / relative).is_file():
        msg = f"the python package {python.version} installed no {relative}"
        raise StageError(msg, hint="use a python package that installs bin/pythonX.Y")
    return relative


def _install(pack: PixiPack, prefix: Path, final: Path, cache: Path) -> None:
    """Lay the env out at `prefix` with `final` written wherever a file names its prefix."""
    prefix.mkdir()
    subdir = pack.metadata.platform
    _rattler.install(pack.conda, prefix, placeholder=str(final), subdir=subdir, cache_dir=cache)
    (prefix / "CACHEDIR.TAG").unlink(missing_ok=True)
    history = prefix / "conda-meta" / "history"
    if history.parent.is_dir() and not history.exists():
        history.write_text(_HISTORY_NOTE, encoding="utf-8")
    if pack.wheels:
        staged = StagedPrefix(prefix, str(final), subdir, _python(pack, prefix))
        wheels = [FetchedWheel(w, w.path, w.package.url) for w in pack.wheels]
        install_wheels(wheels, staged)


def _check_activate(dest: Destination, *, force: bool) -> None:
    script = dest.folder / ACTIVATE_SCRIPT
    if not os.path.lexists(script):
        return
    if not force:
        msg = f"{script} already exists"
        raise OutputExistsError(msg, hint="pass --force to replace it, or choose another -o DIR")
    if script.is_dir() or script.is_symlink():
        msg = f"{script} is not a file: --force will not replace it"
        raise OutputError(msg, hint="remove it yourself, or choose another -o DIR")


def _destination(request: UnpackRequest) -> tuple[PixiPackMetadata, Destination]:
    metadata = read_metadata(request.archive)
    if request.platform_check:
        check_platform(metadata, HostFacts.detect())
    dest = resolve_destination(request.output, request.env_name or "env")
    check_path(dest, DEFAULT_PREFIX_MAX)
    check_existing(dest.path, force=request.force)
    _check_activate(dest, force=request.force)
    return metadata, dest


def _build(request: UnpackRequest, dest: Destination, work: Path) -> tuple[Path, int]:
    """Verify the pack, install it into ``work/env`` and write ``work/activate.sh``."""
    pack = open_pixi_pack(request.archive, work / "pack")
    check_path(dest, prefix_capacity(pack.conda))
    prefix = work / "env"
    _install(pack, prefix, dest.path, work / "cache")
    if request.compile_bytecode and any(f.package.name == "python" for f in pack.conda):
        compile_bytecode(prefix, dest, _python(pack, prefix))
    script = work / ACTIVATE_SCRIPT
    script.write_text(activation_script(prefix, dest.path), encoding="utf-8")
    script.chmod(0o644)
    return prefix, sum(len(d) + len(f) for _, d, f in os.walk(prefix))


def unpack_pixi_pack(request: UnpackRequest, reporter: Reporter) -> UnpackResult:
    """Install a pixi-pack archive (tar or folder) into ``DIR/NAME``, with ``DIR/activate.sh``."""
    _metadata, dest = _destination(request)
    token = reporter.on_task_start(f"installing into {dest.path}", None)
    placement = Placement(dest, force=request.force)
    with placement as work:
        try:
            prefix, files = _build(request, dest, work)
        except OSError as exc:
            raise write_failed(dest, exc) from exc
        extras: Mapping[str, Path] = {ACTIVATE_SCRIPT: work / ACTIVATE_SCRIPT}
        placement.commit(prefix, extras)
    reporter.on_task_complete(token)
    return UnpackResult("pixi-pack", dest.path, files, dest.folder / ACTIVATE_SCRIPT)

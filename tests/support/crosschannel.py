"""The local conda channel for another architecture (linux-aarch64), built on this machine.

The same recipes as the host's channel (``tests/support/channel.py``): greet, libfoo and
libbar are compiled with Debian's cross compiler (``aarch64-linux-gnu-gcc``), hello-py is
noarch, and the ``python`` package is Debian's arm64 CPython made relocatable
(``tests/support/debpython.py``). Cached like the host's channel, keyed by the recipes, this
module, the exact Debian package files and the compiler and rattler-build versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import rattler_build

from tests.support import channel, debarch, debpython
from tests.support.host import cache_root, locked

__all__ = ["CROSS_COMPILERS", "build_cross_channel", "cross_python_spec"]

CROSS_COMPILERS = {"aarch64": "aarch64-linux-gnu-gcc"}
"""Debian's cross compiler per machine (apt: gcc-aarch64-linux-gnu)."""
SUBDIR = {"aarch64": "linux-aarch64"}


def cross_python_spec() -> str:
    """The python spec a project on the cross channel asks for."""
    return f"python {debpython.DEBIAN_PYTHON}.*"


def _key(machine: str, debs: debarch.ForeignDebs) -> str:
    digest = hashlib.sha256()
    inputs: list[tuple[str, bytes]] = [
        (f"recipes/{p.relative_to(channel.RECIPES).as_posix()}", p.read_bytes())
        for p in sorted(channel.RECIPES.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    ]
    for module in (channel, debpython, Path(__file__)):
        path = Path(module) if isinstance(module, Path) else Path(str(module.__file__))
        inputs.append((path.name, path.read_bytes()))
    compiler = CROSS_COMPILERS[machine]
    inputs += [
        ("debs", debs.key.encode()),
        ("rattler-build", rattler_build.rattler_build_version().encode()),
        ("cc", channel._tool_version([compiler, "-dumpfullversion"]).encode()),
    ]
    for name, data in inputs:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def build_cross_channel(machine: str = "aarch64") -> Path:
    """Build (or reuse) a file:// channel with linux-<machine> + noarch, indexed."""
    compiler = CROSS_COMPILERS[machine]
    if shutil.which(compiler) is None:
        msg = f"{compiler} not found (run scripts/install-system-deps.sh --tests)"
        raise RuntimeError(msg)
    debs = debpython.debian_python_debs(machine)
    key = _key(machine, debs)
    root = cache_root()
    final = root / f"channel-{SUBDIR[machine]}-{key}"
    if channel._is_complete(final):
        return final
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / "build.lock"):
        if channel._is_complete(final):
            return final
        channel._remove_leftovers(root)
        with tempfile.TemporaryDirectory(dir=root, prefix=f".building-{key[:16]}-") as tmp:
            built = _build_into(Path(tmp), machine, debs, key)
            os.rename(built, final)
    return final


def _build_recipe(recipe: Path, out: Path, context: dict[str, str], subdir: str) -> Path:
    """Cross-build one recipe offline into ``out`` (also the channel of host dependencies).

    Through rattler-build's older ``build_recipes``: the newer per-variant ``run_build``
    (0.73) solves the host environment for the build machine whatever ``host_platform``
    says, so libbar's ``host: libfoo`` is not found in the linux-aarch64 subdir.
    """
    before = set(out.glob("*/*.conda"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            rattler_build.build_recipes(
                [recipe / "recipe.yaml"],
                target_platform=subdir,
                host_platform=subdir,
                build_platform=channel.SUBDIRS[0],
                channel=[out.as_uri()],
                output_dir=out,
                variant_overrides={k: [v] for k, v in context.items()},
                test="skip",
                no_include_recipe=True,
                package_format="conda",
            )
        except Exception as exc:
            msg = f"cross-building {recipe.name} for {subdir} failed: {exc}"
            raise RuntimeError(msg) from exc
    made = sorted(p for p in set(out.glob("*/*.conda")) - before if p.name.startswith(recipe.name))
    if len(made) != 1:
        msg = f"cross-building {recipe.name} made {made}, not one package"
        raise RuntimeError(msg)
    return made[0]


def _build_into(tmp: Path, machine: str, debs: debarch.ForeignDebs, key: str) -> Path:
    debarch.register_qemu(machine)  # the fixture compiles the stdlib with the target python
    python = debpython.unpack_debian_python(debs, machine, tmp / "sysroot")
    stage = debpython.relocate_debian_python(python, tmp / "python-stage")
    recipes = tmp / "recipes"
    shutil.copytree(channel.RECIPES, recipes)
    context = {
        "python_version": python.version,
        "python_stage": str(stage),
        "build_string": f"h{key[:7]}_0",
        "cc": CROSS_COMPILERS[machine],
    }
    out = tmp / "out"
    subdir = SUBDIR[machine]
    with channel._patchelf_on_path():
        built = [_build_recipe(recipes / name, out, context, subdir) for name in channel.PACKAGES]
    result = tmp / "channel"
    channel._collect(built, result, (subdir, "noarch"))
    manifest = {
        "key": key,
        "python_version": python.version,
        "python_source": [f.name for f in debs.files],
        "packages": sorted(f"{p.parent.name}/{p.name}" for p in built),
    }
    (result / channel.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return result

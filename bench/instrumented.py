"""One in-process ``portenv pack`` with each pipeline step timed.

``python -m bench.instrumented PROJECT OUTPUT CACHE KEEP RESULT_JSON MODE``

MODE ``fresh`` packs with ``reuse_sealed=False`` (stage, seal and write, as a first pack of a
lock does) and, before the write step starts its clock, hard-link copies the sealed prefix to
KEEP: it is the "same staged prefix" conda-pack is run on. MODE ``reuse`` packs from the
sealed-prefix cache (a pack of the same lock must have filled it), as every later pack does.
The steps are the functions ``portenv.pack.pack`` chains (in ``portenv.pack.sources`` and
``portenv.pack.chain``), each wrapped in the namespace it is
called from, so the figures follow the real code. Runs in its own process and leaves with
``os._exit`` (py-rattler's runtime may crash at interpreter exit).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import portenv.pack as pack_module

#: (module, attribute, label, depth): what is timed, as the pipeline calls it. Depth-1 steps
#: run inside the depth-0 step above them.
PHASES = (
    ("portenv.pack.sources", "_plan_lock", "plan: read pixi.toml + pixi.lock", 0),
    ("portenv.pack.sources", "fetch_conda", "fetch (conda, verified cache)", 0),
    ("portenv.pack.sources", "_fetch_pypi", "fetch (PyPI, verified cache)", 0),
    ("portenv.seal.cache", "SealCache.lookup", "sealed-prefix cache: look up the entry", 0),
    ("portenv.seal.cache", "_code_fingerprint", "key: hash portenv's code + tool versions", 1),
    ("portenv.seal.cache", "listing", "listing check (lstat every path)", 1),
    ("portenv.stage", "stage", "stage: install conda packages", 0),
    ("portenv.stage.wheels", "install_wheels", "stage: install wheels", 0),
    ("portenv.seal", "seal", "seal", 0),
    ("portenv.elf", "scan_elf", "ELF scan (glibc floor, machines)", 1),
    ("portenv.seal", "scan_prefix", "placeholder scan (relocation manifest)", 1),
    ("portenv.pack.chain", "listing", "listing of the sealed prefix", 0),
    ("portenv.pack.chain", "write_archive", "write", 0),
    ("portenv.write", "write_payload", "tar + gzip (ISA-L, parallel) at the payload's offset", 1),
    ("portenv.write", "publish_sha256", "sha256 of the output (+ .sha256 file)", 1),
    ("portenv.seal.cache", "SealCache.store", "keep the sealed prefix in the cache", 0),
)


def key_of(module_name: str, attr: str) -> str:
    """The name a step's time is kept under, e.g. ``pack:stage`` or ``seal.cache:listing``."""
    return f"{module_name.removeprefix('portenv.')}:{attr}"


def _wrap(
    module: Any, attr: str, wrapped: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> bool:
    if "." in attr:  # Class.method
        owner, attr = attr.split(".")
        module = getattr(module, owner, None)
    func = getattr(module, attr, None)
    if func is None:
        return False
    setattr(module, attr, wrapped(func))
    return True


def main(argv: list[str]) -> int:
    project, output, cache, keep, result = (Path(a) for a in argv[:5])
    reuse = argv[5] == "reuse"
    timings: dict[str, float] = {}

    def timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if name == key_of("portenv.pack.chain", "write_archive") and not reuse:
                sealed = args[0]  # copied before the clock starts
                shutil.rmtree(keep, ignore_errors=True)
                subprocess.run(["cp", "-al", str(sealed.path), str(keep)], check=True)
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - start

        return wrapper

    missing = []
    for module_name, attr, _label, _depth in PHASES:
        module = importlib.import_module(module_name)
        if not _wrap(module, attr, partial(timed, key_of(module_name, attr))):
            missing.append(key_of(module_name, attr))
    if key_of("portenv.pack.chain", "write_archive") in missing:
        gone = "bench: portenv.pack.chain.write_archive is gone: cannot keep the prefix"
        print(gone, file=sys.stderr)
        return 1
    # the single-stage gzip archive: bench.target re-runs its unpacker phases (gunzip of
    # member slices) one by one; the default archive is timed whole beside it
    request = pack_module.PackRequest(
        pack_module.PlanRequest(project),
        output,
        cache=cache,
        reuse_sealed=reuse,
        compression="gzip",
    )
    start = time.perf_counter()
    pack_module.pack(request)
    total = time.perf_counter() - start
    data = {
        "total": total,
        "phases": timings,
        "steps": [[key_of(m, attr), label, depth] for m, attr, label, depth in PHASES],
        "missing": missing,
        "mode": argv[5],
    }
    result.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

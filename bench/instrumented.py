"""One in-process ``portenv pack`` with each pipeline step timed; keeps the sealed prefix.

``python -m bench.instrumented PROJECT OUTPUT CACHE KEEP RESULT_JSON``

The steps are the functions ``portenv.pack.pack`` chains (fetch -> stage -> wheels -> seal ->
write); each is wrapped in the ``portenv.pack`` namespace, so the figures follow the real
code. Before the write step starts its clock, the sealed prefix is hard-link copied to
KEEP: it is the "same staged prefix" conda-pack is run on. Runs in its own process and
leaves with ``os._exit`` (py-rattler's runtime may crash at interpreter exit).
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
    ("portenv.pack", "plan", "plan: read pixi.toml + pixi.lock", 0),
    ("portenv.pack", "fetch_conda", "fetch (conda, verified cache)", 0),
    ("portenv.pack", "_fetch_pypi", "fetch (PyPI, verified cache)", 0),
    ("portenv.pack", "stage", "stage: install conda packages", 0),
    ("portenv.pack", "install_wheels", "stage: install wheels", 0),
    ("portenv.pack", "seal", "seal", 0),
    ("portenv.seal", "scan_elf", "ELF scan (glibc floor, machines)", 1),
    ("portenv.seal", "scan_prefix", "placeholder scan (relocation manifest)", 1),
    ("portenv.pack", "write_archive", "write", 0),
    ("portenv.write", "write_payload", "tar + parallel gzip into a temp file", 1),
    ("portenv.write", "FORMATS[.sh]", "copy the payload into env.sh", 1),
    ("portenv.write", "publish_sha256", "sha256 of the output (+ .sha256 file)", 1),
)


def _wrap(
    module: Any, attr: str, wrapped: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> bool:
    if attr.startswith("FORMATS["):
        formats = getattr(module, "FORMATS", None)
        key = attr[len("FORMATS[") : -1]
        if not isinstance(formats, dict) or key not in formats:
            return False
        formats[key] = wrapped(formats[key])
        return True
    func = getattr(module, attr, None)
    if func is None:
        return False
    setattr(module, attr, wrapped(func))
    return True


def main(argv: list[str]) -> int:
    project, output, cache, keep, result = (Path(a) for a in argv)
    timings: dict[str, float] = {}

    def timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if name == "write_archive":
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
        if not _wrap(module, attr, partial(timed, attr)):
            missing.append(attr)
    if "write_archive" in missing:
        print("bench: portenv.pack.write_archive is gone: cannot keep the prefix", file=sys.stderr)
        return 1
    request = pack_module.PackRequest(pack_module.PlanRequest(project), output, cache=cache)
    start = time.perf_counter()
    pack_module.pack(request)
    total = time.perf_counter() - start
    data = {
        "total": total,
        "phases": timings,
        "steps": [[attr, label, depth] for _m, attr, label, depth in PHASES],
        "missing": missing,
    }
    result.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

"""Updates (issue 20): the size of an update and the time to apply it, against the full archive
and a fresh unpack, for S and M with one package bumped.

OLD is the environment's project with one small PyPI package pinned to an older release (S:
idna, M: pyparsing), NEW the project as the other pieces pack it. In the bare Debian rootfs
(dash as /bin/sh, on a tmpfs) ptime times, interleaved: `sh update.sh -o DIR` on a fresh
unpack of OLD, and `sh new.sh -o DIR2` (the unpack of NEW that the update replaces).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.config import EnvSpec, cache_root
from bench.envs import channel_for, log_path, portenv_argv, project_for, say
from bench.onefile import read_meta_of_sh
from bench.report import fs, med, ok_walls, table
from bench.target import run_script
from bench.timing import ptime_binary

__all__ = ["BUMPED", "delta_section", "measure_delta"]

BUMPED = {"S": "idna==3.7", "M": "pyparsing==3.1.4"}
"""The package each environment's OLD pins to an older release."""

SCRIPT = r"""
set -u
A=/in R=/res/times.txt
p() { "$A/ptime" "$R" "$@"; }
i=0
while [ "$i" -lt {reps} ]; do
    rm -rf /t/u /t/v
    sh "$A/old.sh" -o /t/u 2>/dev/null
    p apply sh "$A/update.sh" -o /t/u 2>>/res/apply.log
    p unpack sh "$A/new.sh" -o /t/v 2>>/res/unpack.log
    i=$((i + 1))
done
echo done >/res/finished
"""


def _old_project(spec: EnvSpec) -> Path:
    """`spec`'s project with BUMPED pinned, locked once."""
    from tests.support.pypilock import write_pypi_project

    pin = BUMPED[spec.name]
    chan = channel_for(spec.python)
    ident = json.dumps([str(chan), spec.python, spec.pypi, pin, 1]).encode()
    digest = hashlib.sha256(ident).hexdigest()[:12]
    project = cache_root() / "projects" / f"{spec.name}-old-{digest}"
    if (project / "pixi.lock").is_file():
        return project
    say(f"delta: locking {spec.name} with {pin}")
    tmp = project.with_name(project.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_pypi_project(tmp, chan, [f"python {spec.python}.*"], [*spec.pypi, pin])
    os.rename(tmp, project)
    return project


def _portenv(*args: str | Path) -> float:
    """Run portenv; its wall time."""
    started = time.perf_counter()
    with log_path().open("ab") as log:
        subprocess.run([*portenv_argv(), *map(str, args)], stdout=log, stderr=log, check=True)
    return time.perf_counter() - started


def measure_delta(spec: EnvSpec, rootfs: Path) -> dict[str, Any]:
    """Pack OLD and NEW, make the update, time its apply against the unpack of NEW."""
    out = cache_root() / "run" / f"delta-{spec.name}"
    res = out / "res"
    shutil.rmtree(out, ignore_errors=True)
    res.mkdir(parents=True)
    pcache = cache_root() / "pcache"
    say(f"delta: packing {spec.name} (OLD with {BUMPED[spec.name]}) and NEW")
    for name, project in (("old.sh", _old_project(spec)), ("new.sh", project_for(spec))):
        _portenv("pack", project, "-o", out / name, "--use-cache", pcache, "-q")
    make = _portenv("delta", out / "old.sh", out / "new.sh", "-o", out / "update.sh", "-q")
    (out / "ptime").write_bytes(ptime_binary().read_bytes())
    (out / "ptime").chmod(0o755)
    (out / "delta-bench.sh").write_text(SCRIPT.replace("{reps}", str(spec.reps_unpack)))
    say(f"delta: {spec.reps_unpack} applies and unpacks of {spec.name}")
    found = run_script(rootfs, out, "delta-bench.sh")
    samples = {label: [sample.__dict__ for sample in run] for label, run in found.items()}
    update_meta = read_meta_of_sh(out / "update.sh")
    return {
        "env": spec.name,
        "what": spec.what,
        "bumped": BUMPED[spec.name],
        "meta": read_meta_of_sh(out / "new.sh"),
        "update_meta": update_meta,
        "sizes": {n: (out / n).stat().st_size for n in ("old.sh", "new.sh", "update.sh")},
        "make_seconds": make,
        "applied": (res / "apply.log").read_text().strip().splitlines()[-1:],
        "samples": dict(samples),
    }


def delta_section(stored: dict[str, Any]) -> list[str]:
    """The BENCHMARKS.md section from results.json's "delta": one row per environment."""
    rows, shares, speeds = [], [], []
    for piece in stored["pieces"]:
        sizes, samples, um = piece["sizes"], piece["samples"], piece["update_meta"]
        apply, unpack = med(samples["apply"]), med(samples["unpack"])
        share = sizes["update.sh"] / sizes["new.sh"]
        counts = f"+{um['adds']} ~{um['changes']} -{um['removes']}"
        shares.append(f"{share:.1%} ({piece['env']})")
        speeds.append(f"{(apply or 0) / (unpack or 1):.2f}x ({piece['env']})")
        rows.append(
            [
                f"{piece['env']}: {piece['bumped']} -> latest",
                f"{sizes['new.sh'] / 2**20:.1f} MiB",
                f"{sizes['update.sh'] / 2**20:.2f} MiB ({share:.1%})",
                counts,
                fs(piece["make_seconds"]),
                fs(apply),
                fs(unpack),
                f"{(apply or 0) / (unpack or 1):.2f}",
                str(len(ok_walls(samples["apply"]))),
            ]
        )
    header = [
        "env: package bumped",
        "NEW env.sh",
        "update.sh (of NEW)",
        "paths + ~ -",
        "delta (s)",
        "apply (s)",
        "unpack NEW (s)",
        "apply / unpack",
        "runs",
    ]
    return [
        "## Updates: ship only what changed (issue 20)",
        "",
        "OLD is the environment with one small PyPI package pinned to an older release, NEW the",
        "environment as above. `portenv delta OLD.sh NEW.sh -o update.sh` on the build host;",
        "in the bare Debian rootfs (dash, on a tmpfs), interleaved: `sh update.sh -o DIR` on a",
        "fresh unpack of OLD (its whole check of OLD, extraction, the new tree of hard links,",
        "relocation and the swap) against `sh new.sh -o DIR2`. Medians; measured by",
        "",
        "```sh",
        stored["command"],
        "```",
        "",
        f"(load average {stored['load average']} at its end).",
        "",
        *table(header, rows),
        "Goals of issue 20: an update of a few percent of the archive (<= 5% when one small"
        f" package changes in an env of tens of MB): {', '.join(shares)}; applying it in less"
        f" time than unpacking NEW: {', '.join(speeds)}. Most of an apply is the check that the"
        " env is exactly OLD (every file hashed, those that hold the prefix read back to the"
        " placeholder). The ratios come from interleaved runs; on a loaded machine (the load"
        " average above) the absolute times are high.",
        "",
    ]

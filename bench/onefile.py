"""One-file apps (issue 16): what running from the per-user cache adds, inside the rootfs.

S is packed twice more from its sealed prefix: `tool.sh` (`--entry python`) and `env.sh`
(no entry). In the bare Debian rootfs (dash as /bin/sh, the cache on a tmpfs) ptime times

- a warm start: `./tool.sh --version` (and under bash, and `sh env.sh --run python --version`)
  against the cached `env/bin/python --version` itself, interleaved, many times;
- a first run: `./tool.sh --version` into an empty cache against `sh env.sh -o DIR`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.config import EnvSpec, cache_root
from bench.envs import embedded_offset, pack_quietly, project_for, say
from bench.target import run_script
from bench.timing import ptime_binary

__all__ = ["WARM", "measure_onefile"]

WARM = {
    "direct": "`env/bin/python --version`, the cached env's own interpreter",
    "tool": "`./tool.sh --version` (`--entry python`, /bin/sh = dash)",
    "tool_bash": "`bash tool.sh --version`",
    "run": "`sh env.sh --run python --version`",
}
FIRST = {
    "first": "first `./tool.sh --version`: unpack into the empty cache, then run",
    "unpack": "`sh env.sh -o DIR` (the unpack alone)",
}

SCRIPT = r"""
set -u
A=/in R=/res/times.txt
export PORTENV_CACHE=/t/cache
p() { "$A/ptime" "$R" "$@"; }
i=0
while [ "$i" -lt {first_reps} ]; do
    rm -rf /t/cache /t/u
    p first "$A/tool.sh" --version >/dev/null
    p unpack sh "$A/env.sh" -o /t/u 2>>/res/unpack.log
    i=$((i + 1))
done
sh "$A/env.sh" --run python --version >/dev/null
E=$(echo /t/cache/*)
i=0
while [ "$i" -lt {warm_reps} ]; do
    p direct "$E/{py}" --version >/dev/null
    p tool "$A/tool.sh" --version >/dev/null
    p tool_bash bash "$A/tool.sh" --version >/dev/null
    p run sh "$A/env.sh" --run python --version >/dev/null
    i=$((i + 1))
done
echo done >/res/finished
"""


def measure_onefile(spec: EnvSpec, rootfs: Path, warm_reps: int = 201) -> dict[str, Any]:
    """Pack S as tool.sh and env.sh, time warm and first runs in the rootfs."""
    out = cache_root() / "run" / "onefile"
    res = out / "res"
    res.mkdir(parents=True, exist_ok=True)
    for old in res.iterdir():
        old.unlink()
    project = project_for(spec)
    say(f"onefile: packing {spec.name} as tool.sh (--entry python) and env.sh")
    pack_quietly(project, out / "tool.sh", "--entry", "python")
    pack_quietly(project, out / "env.sh")
    (out / "ptime").write_bytes(ptime_binary().read_bytes())
    (out / "ptime").chmod(0o755)
    meta = read_meta_of_sh(out / "env.sh")
    script = (
        SCRIPT.replace("{first_reps}", str(spec.reps_unpack))
        .replace("{warm_reps}", str(warm_reps))
        .replace("{py}", "bin/python")
    )
    (out / "onefile-bench.sh").write_text(script)
    say(f"onefile: {warm_reps} warm starts of each kind, {spec.reps_unpack} first runs")
    found = run_script(rootfs, out, "onefile-bench.sh")
    samples = {label: [sample.__dict__ for sample in run] for label, run in found.items()}
    return {"env": spec.name, "what": spec.what, "meta": meta, "samples": dict(samples)}


def read_meta_of_sh(env_sh: Path) -> dict[str, str]:
    """The meta block of an env.sh: 4096 bytes after the header and the first tar header."""
    with env_sh.open("rb") as stream:
        stream.seek(embedded_offset(env_sh) + 512)
        block = stream.read(4096).decode("ascii")
    return dict(line.split("=", 1) for line in block.splitlines() if "=" in line)

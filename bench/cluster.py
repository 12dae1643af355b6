"""Ship an environment to Spark: portenv's plain tar.gz against conda-pack's, same env, same job.

``python -m bench.cluster [--reps N]`` builds one pixi environment (the local channel's
python 3.12 + pandas + pyarrow from PyPI), packs it with ``portenv pack --format tar.gz`` and,
from the same environment unpacked as an ordinary conda prefix, with ``conda-pack``; then runs
the same pyspark job (one pandas UDF over 8 partitions) with each archive through
``spark-submit --archives ARCHIVE#environment`` in ``local-cluster[2,1,1024]``, offline on the
loopback, interleaved. It prints its section of BENCHMARKS.md and keeps the samples in the
bench cache's ``cluster.json``. Needs root (a private network namespace), a JRE and the
engines' driver venv (tests/support/engines.py, made on first use from PyPI).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.config import EnvSpec, cache_root
from bench.envs import make_conda_env, portenv_argv, project_for, say
from bench.facts import load_average

JOB = """
import os, sys, time
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.functions import pandas_udf

spark = SparkSession.builder.appName("bench-cluster").getOrCreate()
ready = time.monotonic()

@pandas_udf("string")
def where(ids: pd.Series) -> pd.Series:
    return ids.map(lambda _: os.path.realpath(sys.prefix))

rows = spark.range(0, 64, numPartitions=8).select(where("id").alias("w")).collect()
print("first-result-seconds", time.monotonic() - ready)
print("executor-prefixes", len({r.w for r in rows}))
spark.stop()
"""
SPEC = EnvSpec("spark", "3.12", ("pandas==3.1.1", "pyarrow==26.0.1"), "pandas", 0, 0, "Spark")
CONDA_PACK = "conda-pack==0.9.2"


def tools_venv() -> Path:
    """conda-pack in its own venv (the suite's tools venv when run.sh made one)."""
    tools = cache_root() / "tools"
    if not (tools / "bin" / "conda-pack").is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(tools)], check=True)
        pip = [str(tools / "bin" / "python"), "-m", "pip", "install", "-q", CONDA_PACK]
        subprocess.run(pip, check=True)
    return tools


def run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def build_archives(out: Path) -> dict[str, Path]:
    """plain.tar.gz (portenv) and conda-pack.tar.gz of the same locked environment."""
    project = project_for(SPEC)
    pcache = cache_root() / "pcache"
    cache = ["--use-cache", str(pcache)]
    plain = out / "plain.tar.gz"
    say("cluster: portenv pack --format tar.gz")
    run([*portenv_argv(), "pack", str(project), "--format", "tar.gz", "-o", str(plain), *cache])
    say("cluster: the same env as a conda prefix, then conda-pack")
    run([*portenv_argv(), "pack", str(project), "-o", str(out / "env.tar"), *cache])
    run([*portenv_argv(), "unpack", str(out / "env.tar"), "-o", str(out / "conda")])
    prefix = out / "conda" / "env"
    make_conda_env(prefix, {"python": "bin/python3.12"}, pcache / "rattler")
    packed = out / "conda-pack.tar.gz"
    conda_pack = [str(tools_venv() / "bin" / "conda-pack"), "-p", str(prefix), "-o", str(packed)]
    run([*conda_pack, "--quiet", "--force"])
    return {"portenv plain": plain, "conda-pack": packed}


def spark_once(archive: Path, driver: Path, work: Path) -> tuple[float, float, int]:
    """(wall seconds of spark-submit, seconds from the session to the first result, executors)."""
    from tests.support.engines import spark_home, spark_submit

    started = time.monotonic()
    done = spark_submit(driver, str(archive), work / "job.py", cwd=work)
    wall = time.monotonic() - started
    if done.returncode != 0:
        msg = f"spark-submit with {archive.name} failed:\n{done.stderr[-3000:]}"
        raise RuntimeError(msg)
    words = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    subprocess.run(["rm", "-rf", str(spark_home(driver) / "work")], check=False)
    return wall, float(words["first-result-seconds"]), int(words["executor-prefixes"])


def section(result: dict[str, object]) -> list[str]:
    """This piece's section of BENCHMARKS.md."""
    samples = result["samples"]
    assert isinstance(samples, dict)
    lines = [
        "## Clusters: a plain archive against conda-pack's on Spark (issue 15)",
        "",
        f"`{result['command']}`: {SPEC.what} job over {result['env']}; each archive shipped with",
        "`spark-submit --archives ARCHIVE#environment` to `local-cluster[2,1,1024]` (two",
        "executor JVMs, each extracting it), offline on the loopback, runs interleaved; load",
        f"average at the start: {result['load average']}. *First result*: from the ready",
        "SparkSession to the collected pandas UDF result (executors fetch and extract the",
        "archive, start its python, import pandas and pyarrow); *wall*: the whole spark-submit.",
        "",
        "| archive | size (MiB) | first result, median s (runs) | wall, median s |",
        "|---|---|---|---|",
    ]
    sizes = result["sizes"]
    assert isinstance(sizes, dict)
    for name, runs in samples.items():
        first = statistics.median(r[1] for r in runs)
        wall = statistics.median(r[0] for r in runs)
        runs_text = ", ".join(f"{r[1]:.1f}" for r in runs)
        size = sizes[name] / 2**20
        lines.append(f"| {name} | {size:.1f} | {first:.1f} ({runs_text}) | {wall:.1f} |")
    return [*lines, ""]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    from tests.support.engines import SPARK_PINS, engine_venv
    from tests.support.pyrelocate import installed_pythons

    out = cache_root() / "run" / "cluster"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    archives = build_archives(out)
    driver = engine_venv(installed_pythons(["3.12"])["3.12"], SPARK_PINS)
    (out / "job.py").write_text(JOB)
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in archives}
    load = load_average()
    for rep in range(args.reps):
        for name, archive in archives.items():
            say(f"cluster: {name}, run {rep + 1}/{args.reps}")
            samples[name].append(spark_once(archive, driver, out))
    result: dict[str, object] = {
        "command": f"python -m bench.cluster --reps {args.reps}",
        "env": "python 3.12 (local channel) + " + ", ".join(SPEC.pypi),
        "load average": load,
        "sizes": {name: path.stat().st_size for name, path in archives.items()},
        "samples": samples,
    }
    (cache_root() / "cluster.json").write_text(json.dumps(result, indent=1))
    sys.stdout.write("\n".join(section(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

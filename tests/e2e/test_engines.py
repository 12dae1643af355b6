"""The README's cluster recipes on real engines from PyPI, offline, on the loopback only.

Spark: `spark-submit --archives env.tar.gz#environment` with `spark.pyspark.python=
./environment/bin/python` in `local-cluster[2,1,1024]` (two executor JVMs, each extracting the
archive itself); a pandas UDF reports the prefix of the python that ran it. Ray: a local
cluster whose workers run the env.zip `working_dir`'s own python (`py_executable`). Dask: a
scheduler, and two workers started from two extracted copies of the archive. The driver side
is a venv of the same CPython with the same pins (tests/support/engines.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import portenv
from tests.support.engines import (
    DASK_PINS,
    RAY_PINS,
    SPARK_PINS,
    engine_venv,
    offline,
    package_cache_dir,
    spark_home,
    spark_submit,
)
from tests.support.pyrelocate import installed_pythons

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.network, pytest.mark.root]

SPARK_JOB = """
import os, sys
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.functions import pandas_udf

spark = SparkSession.builder.appName("portenv-plain").getOrCreate()

@pandas_udf("string")
def where(ids: pd.Series) -> pd.Series:
    import pyarrow
    here = f"{os.path.realpath(sys.prefix)}|{pd.__version__}|{pyarrow.__version__}"
    return ids.map(lambda _: here)

rows = spark.range(0, 64, numPartitions=8).select(where("id").alias("w")).collect()
for seen in sorted({r.w for r in rows}):
    print("executor", seen)
print("driver", os.path.realpath(sys.prefix))
spark.stop()
"""
RAY_JOB = """
import os, sys
import ray

ray.init(
    num_cpus=2,
    include_dashboard=False,
    _node_ip_address="127.0.0.1",
    runtime_env={"working_dir": sys.argv[1], "py_executable": "bin/python"},
)

@ray.remote
def where():
    return os.path.realpath(sys.prefix)

for seen in sorted(set(ray.get([where.remote() for _ in range(4)]))):
    print("worker", seen)
print("driver", os.path.realpath(sys.prefix))
ray.shutdown()
"""


def python312() -> Path:
    found = installed_pythons(["3.12"]).get("3.12")
    if found is None:
        pytest.fail("CPython 3.12 not found (pyenv or PATH), the test needs it")
    return found


def pack_plain(python: Path, pins: tuple[str, ...], output: Path, *extra: str) -> Path:
    """The environment the workers run: the same CPython, the engine's pins (minus pyspark)."""
    requirements = output.parent / f"{output.name}.requirements.txt"
    requirements.write_text("\n".join(p for p in pins if not p.startswith("pyspark")) + "\n")
    archive_format = "zip" if output.suffix == ".zip" else "tar.gz"
    common = ["--python", str(python), "-r", str(requirements), "-q"]
    common += ["--format", archive_format, *extra, "--use-cache", str(package_cache_dir())]
    portenv("pack", *common, "-o", output)
    return output


def test_spark_executors_run_the_archive(tmp_path: Path) -> None:
    python = python312()
    driver = engine_venv(python, SPARK_PINS)
    pack_plain(python, SPARK_PINS, tmp_path / "env.tar.gz")
    (tmp_path / "job.py").write_text(SPARK_JOB)
    confs = {  # wait for both executors, so that both run tasks
        "spark.scheduler.minRegisteredResourcesRatio": "1.0",
        "spark.scheduler.maxRegisteredResourcesWaitingTime": "300s",
    }
    done = spark_submit(driver, "env.tar.gz", tmp_path / "job.py", cwd=tmp_path, confs=confs)
    assert done.returncode == 0, done.stderr[-4000:]
    executors = [line.split(" ", 1)[1] for line in done.stdout.splitlines() if "executor " in line]
    prefixes = {e.split("|")[0] for e in executors}
    # local-cluster workers keep SPARK_HOME/work (SPARK_WORKER_DIR is not passed on to them)
    work = spark_home(driver).resolve() / "work"
    for app in {Path(p).parent.parent for p in prefixes if Path(p).is_relative_to(work)}:
        shutil.rmtree(app)
    assert len(prefixes) == 2, executors  # two executor JVMs, each its own extracted copy
    for prefix in prefixes:
        assert re.fullmatch(re.escape(str(work)) + r"/app-[0-9-]+/[0-9]+/environment", prefix)
    pins = dict(p.split("==") for p in SPARK_PINS)
    assert {e.split("|", 1)[1] for e in executors} == {f"{pins['pandas']}|{pins['pyarrow']}"}
    assert f"driver {driver.resolve()}" in done.stdout


def test_ray_workers_run_the_archive(tmp_path: Path) -> None:
    python = python312()
    driver = engine_venv(python, RAY_PINS)
    archive = pack_plain(python, RAY_PINS, tmp_path / "env.zip")
    (tmp_path / "job.py").write_text(RAY_JOB)
    # Ray's socket paths must stay short (sun_path is 108 bytes): a short folder under /tmp
    with tempfile.TemporaryDirectory(prefix="ray", dir="/tmp") as scratch:
        done = offline(
            [driver / "bin" / "python", "job.py", archive],
            cwd=tmp_path,
            env={"RAY_TMPDIR": scratch, "HOME": str(tmp_path), "RAY_AUTH_MODE": "disabled"},
        )
        assert done.returncode == 0, done.stderr[-4000:]
        workers = [line.split(" ", 1)[1] for line in done.stdout.splitlines() if "worker " in line]
        real = os.path.realpath(scratch)
    assert len(workers) == 1, workers  # one working_dir, extracted once on the one node
    assert workers[0].startswith(real + "/") and "working_dir_files" in workers[0], workers
    assert f"driver {driver.resolve()}" in done.stdout


DASK_CLIENT = """
import os, sys
from distributed import Client
client = Client(scheduler_file=sys.argv[1], timeout=120)
client.wait_for_workers(2, timeout=300)
for worker, prefix in sorted(client.run(lambda: os.path.realpath(sys.prefix)).items()):
    print("worker", prefix)
print("sum", client.submit(sum, range(10)).result())
client.shutdown()
"""


def test_dask_workers_started_from_the_archive(tmp_path: Path) -> None:
    python = python312()
    driver = engine_venv(python, DASK_PINS)
    archive = pack_plain(python, DASK_PINS, tmp_path / "env.tar.gz", "--dereference")
    places = [tmp_path / "node one" / "env", tmp_path / "node-two" / "env"]
    for place in places:
        place.mkdir(parents=True)
        subprocess.run(["tar", "-xzf", archive, "-C", place], check=True)
    (tmp_path / "client.py").write_text(DASK_CLIENT)
    scheduler = tmp_path / "scheduler.json"
    start = [
        '"$1"/bin/dask scheduler --host 127.0.0.1 --port 0 --no-dashboard '
        '--scheduler-file "$4" > scheduler.log 2>&1 &',
        *(
            f'"{place}/bin/dask" worker --host 127.0.0.1 --nthreads 1 --no-dashboard '
            f'--scheduler-file "$4" > worker{index}.log 2>&1 &'
            for index, place in enumerate(places)
        ),
        'while [ ! -s "$4" ]; do sleep 1; done',
        '"$2" "$3" "$4"; status=$?',
        "kill $(jobs -p) 2>/dev/null; wait; exit $status",
    ]
    done = offline(
        [
            "sh",
            "-c",
            "\n".join(start),
            "dask",
            driver,
            driver / "bin" / "python",
            tmp_path / "client.py",
            scheduler,
        ],
        cwd=tmp_path,
        env={"HOME": str(tmp_path), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "120s"},
    )
    logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
    assert done.returncode == 0, done.stderr[-3000:] + logs[-3000:]
    workers = sorted(
        line.split(" ", 1)[1] for line in done.stdout.splitlines() if "worker " in line
    )
    assert workers == sorted(str(p.resolve()) for p in places)
    assert "sum 45" in done.stdout

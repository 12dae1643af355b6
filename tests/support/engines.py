"""Real cluster engines (pyspark, ray, dask) from PyPI for the slow e2e tests of plain archives.

Each driver venv is made once per interpreter and pin list, under the test cache, locked
between processes; the engines then run offline in a private network namespace whose only
interface is the loopback (every server binds 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.host import cache_root, locked

__all__ = ["RAY_PINS", "SPARK_PINS", "engine_venv", "offline", "package_cache_dir"]

SPARK_PINS = ("pyspark==4.3.0", "pandas==3.1.1", "pyarrow==26.0.1")
RAY_PINS = ("ray==2.60.0",)
DASK_PINS = ("distributed==2026.8.0", "dask==2026.8.0")


def _key(python: Path, pins: Sequence[str]) -> str:
    version = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return hashlib.sha256(f"{python}\n{version}\n{sorted(pins)}".encode()).hexdigest()[:16]


def engine_venv(python: Path, pins: Sequence[str]) -> Path:
    """A venv of `python` with `pins` installed from PyPI, reused while the inputs are the same."""
    folder = cache_root() / f"engines-{_key(python, pins)}"
    with locked(folder.with_suffix(".lock")):
        if (folder / "ready").is_file():
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run([str(python), "-m", "venv", str(folder)], check=True)
        pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, *pins], check=True, stdin=subprocess.DEVNULL)
        (folder / "ready").write_text("\n".join(pins) + "\n")
    return folder


def package_cache_dir() -> Path:
    """portenv's package cache for these tests: hash-verified files, kept between sessions so
    the engines' wheels are downloaded once."""
    return cache_root() / "engines-portenv-cache"


def offline(
    argv: Sequence[str | Path], *, cwd: Path, env: Mapping[str, str], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run argv in a new network namespace with only the loopback up: nothing is downloaded."""
    script = 'ip link set lo up && exec "$@"'
    command = ["unshare", "--net", "sh", "-c", script, "offline", *map(str, argv)]
    return subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spark_home(driver: Path) -> Path:
    """pyspark's own Spark distribution inside the driver venv."""
    return next((driver / "lib").glob("python3.*/site-packages/pyspark"))


def spark_submit(
    driver: Path, archive: str, job: Path, *, cwd: Path, confs: Mapping[str, str] = {}
) -> subprocess.CompletedProcess[str]:
    """The README's recipe: `spark-submit --archives ARCHIVE#environment` with the executors'
    python `./environment/bin/python`, in local-cluster[2,1,1024] bound to 127.0.0.1, offline."""
    settings = {
        "spark.pyspark.python": "./environment/bin/python",
        "spark.pyspark.driver.python": str(driver / "bin" / "python"),
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        **confs,
    }
    argv: list[str | Path] = [
        driver / "bin" / "spark-submit",
        "--master",
        "local-cluster[2,1,1024]",
    ]
    argv += ["--archives", f"{archive}#environment"]
    argv += [arg for key, value in settings.items() for arg in ("--conf", f"{key}={value}")]
    env = {"SPARK_HOME": str(spark_home(driver)), "SPARK_LOCAL_IP": "127.0.0.1"}
    return offline([*argv, job], cwd=cwd, env=env)

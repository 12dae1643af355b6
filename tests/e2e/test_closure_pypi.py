"""Real PyPI software that needs libraries beyond glibc runs on a glibc + busybox target.

manylinux wheels assume libstdc++.so.6 and libgcc_s.so.1 on the system (pandas, scipy,
matplotlib, kiwisolver); psycopg2 built from its sdist needs libpq.so.5 and its own
dependencies, and its extension was linked with a search path into the build machine's
staging folder. pack bundles them into the environment; the bare target has none of them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from portenv.platforms import version_key
from tests.conftest import portenv
from tests.e2e.test_core import OUTSIDE_LIBS
from tests.e2e.test_python_source import interpreters
from tests.integration.test_pack import readelf_glibc_floor
from tests.support.rootfs import run_in_rootfs

pytestmark = pytest.mark.e2e

REQUIREMENTS = "pandas\nscipy\nmatplotlib\npsycopg2==2.9.10\n"
"""psycopg2 2.9.10 publishes no wheel: it is built from its sdist against this machine's libpq."""

CHECK = r"""
import os, sys
import numpy as np, pandas as pd, scipy.linalg
frame = pd.DataFrame({"k": ["a", "b", "a", "b"], "v": [1.0, 2.0, 3.0, 4.0]})
sums = frame.groupby("k")["v"].sum().to_dict()
assert sums == {"a": 4.0, "b": 6.0}, sums
x = scipy.linalg.solve(np.array([[3.0, 1.0], [1.0, 2.0]]), np.array([9.0, 8.0]))
assert np.allclose(x, [2.0, 3.0]), x
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [1, 4, 9])
plt.savefig("/tmp/plot.png")
with open("/tmp/plot.png", "rb") as png:
    assert png.read(8) == b"\x89PNG\r\n\x1a\n"
import psycopg2, psycopg2.extensions
print("libpq", psycopg2.extensions.libpq_version())
sys.path.insert(0, "/dist")
from outside_libs import outside
assert not outside(os.path.realpath(sys.argv[1])), outside(os.path.realpath(sys.argv[1]))
print("closure ok", sums, [round(v, 6) for v in x.tolist()])
"""


@pytest.fixture(scope="module")
def scientific(package_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """app.sh of a pyenv 3.12 with pandas, scipy, matplotlib and psycopg2 (from its sdist)."""
    python = interpreters(["3.12"])["3.12"]
    dist = tmp_path_factory.mktemp("closure")
    (dist / "requirements.txt").write_text(REQUIREMENTS)
    (dist / "check.py").write_text(CHECK)
    shutil.copy(OUTSIDE_LIBS, dist / "outside_libs.py")
    done = portenv(
        "pack", "--python", python, "-r", dist / "requirements.txt", "-o", dist / "app.sh",
        "--use-cache", package_cache,
    )  # fmt: skip
    (dist / "pack.log").write_text(done.stderr)
    return dist


def test_scientific_stack_and_psycopg2_run_on_a_bare_target(
    scientific: Path, busybox_root: Path
) -> None:
    script = "set -e\nsh /dist/app.sh -o /opt/app > /dev/null\n"
    script += "/opt/app/env/bin/python /dist/check.py /opt/app/env\n"
    result = run_in_rootfs(busybox_root, ["/bin/sh", "-c", script], binds=[(scientific, "/dist")])
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "closure ok {'a': 4.0, 'b': 6.0} [2.0, 3.0]" in result.stdout
    assert "libpq 1" in result.stdout, "psycopg2 reports the bundled libpq's version"


def test_the_bare_target_lacks_what_was_bundled(busybox_root: Path) -> None:
    """The libraries above are not there to be found by accident."""
    script = "ls /lib/*/ /usr/lib/*/ 2>/dev/null || true"
    result = run_in_rootfs(busybox_root, ["/bin/sh", "-c", script])
    names = result.stdout.split()
    assert "libc.so.6" in names
    assert not {"libstdc++.so.6", "libgcc_s.so.1", "libpq.so.5"} & set(names)


@pytest.fixture(scope="module")
def unpacked(scientific: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The environment unpacked on this machine, for inspection only (nothing runs)."""
    out = tmp_path_factory.mktemp("closure-unpacked")
    argv = ["sh", str(scientific / "app.sh"), "-o", str(out)]
    subprocess.run(argv, check=True, capture_output=True)
    return out / "env"


def test_bundled_libraries_are_recorded_with_their_source(scientific: Path, unpacked: Path) -> None:
    record = json.loads((unpacked / ".portenv" / "bundled.json").read_text())
    entries = {str(b["name"]): b for b in record["bundled"]}
    assert {"libstdc++.so.6", "libgcc_s.so.1", "libpq.so.5"} <= set(entries)
    libpq = entries["libpq.so.5"]
    assert Path(str(libpq["source"])).is_file(), "the build machine's file it was copied from"
    assert any("psycopg2/_psycopg" in n for n in libpq["needed_by"])
    assert (unpacked / "lib" / "libpq.so.5").is_file()
    assert record["left_to_target"] == []
    log = (scientific / "pack.log").read_text()
    assert "libpq.so.5" in log and "glibc floor set by:" in log


def test_no_elf_file_keeps_an_absolute_search_path(unpacked: Path) -> None:
    """The psycopg2 extension was linked with a RUNPATH into the staging folder: rewritten."""
    assert_no_absolute_search_path(unpacked)


def assert_no_absolute_search_path(env: Path) -> None:
    """readelf (binutils, independent of portenv's ELF reader) on every ELF file of ``env``."""
    checked, offenders = 0, []
    for path in sorted(env.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        with path.open("rb") as stream:
            if stream.read(4) != b"\x7fELF":
                continue
        checked += 1
        out = subprocess.run(
            ["readelf", "-d", "-W", str(path)], capture_output=True, text=True, check=False
        ).stdout
        for line in out.splitlines():
            if "(RPATH)" in line or "(RUNPATH)" in line:
                entries = line.split("[", 1)[1].rstrip("]").split(":")
                if any(e.startswith("/") for e in entries):
                    offenders.append(f"{path.relative_to(env)}: {line.strip()}")
    assert checked > 50
    assert offenders == []


def test_the_floor_counts_the_bundled_libraries(
    scientific: Path, unpacked: Path, tmp_path: Path
) -> None:
    """The meta's floor is readelf's over every file, bundled ones included, and names them."""
    info = subprocess.run(
        ["sh", str(scientific / "app.sh"), "--info"], capture_output=True, text=True, check=True
    ).stdout
    meta = dict(line.split("=", 1) for line in info.splitlines() if "=" in line)
    assert meta["glibc_floor"] == readelf_glibc_floor(unpacked)
    floor_files = [item.split(":", 1) for item in meta["glibc_floor_files"].split()]
    assert floor_files[0][0] == meta["glibc_floor"]
    bundled = json.loads((unpacked / ".portenv" / "bundled.json").read_text())["bundled"]
    shutil.copy(unpacked / "lib" / "libstdc++.so.6", tmp_path)
    stdcxx = readelf_glibc_floor(tmp_path)
    assert any(b["name"] == "libstdc++.so.6" for b in bundled)
    assert version_key(meta["glibc_floor"]) >= version_key(stdcxx)

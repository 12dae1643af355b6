"""The conda-free source: a local CPython + PyPI requirements, packed and run on bare targets."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from tests.conftest import portenv
from tests.e2e.test_core import OUTSIDE_LIBS, assert_only_under
from tests.support.pypilock import make_wheel
from tests.support.pyrelocate import installed_pythons
from tests.support.rootfs import run_in_rootfs

pytestmark = pytest.mark.e2e

MINORS = ["3.12", "3.13"]
IMPORTS = "ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, readline, decimal, json, idna"

CHECK = r"""
import os, sys, ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, readline, decimal, json, idna
prefix = os.path.realpath(sys.argv[1])
assert os.path.realpath(sys.prefix) == prefix == os.path.realpath(sys.base_prefix), sys.prefix
sys.path.insert(0, "/dist")
from outside_libs import outside
assert not outside(prefix), outside(prefix)
import sysconfig
assert sysconfig.get_config_var("prefix") == sys.prefix, sysconfig.get_config_var("prefix")
n = ssl.create_default_context().cert_store_stats()["x509"]
print("checks ok", sys.version.split()[0], "certs", n)
"""


@pytest.fixture(scope="module")
def python_archives(package_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """app-3.X.sh for each interpreter found, with idna, certifi and charset-normalizer."""
    found = installed_pythons(MINORS)
    missing = [m for m in MINORS if m not in found]
    if missing:
        pytest.fail(f"CPython {missing} not found (pyenv or PATH): the test needs two versions")
    dist = tmp_path_factory.mktemp("python-source")
    requirements = dist / "requirements.txt"
    requirements.write_text("idna\ncertifi\ncharset-normalizer\n")
    (dist / "check.py").write_text(CHECK)
    shutil.copy(OUTSIDE_LIBS, dist / "outside_libs.py")
    make_wheel(dist, "tiny", "1.0", files={"tiny.py": "VALUE = 'tiny installed'\n"})
    for minor in MINORS:
        portenv(
            "pack",
            "--python",
            found[minor],
            "-r",
            requirements,
            "-o",
            dist / f"app-{minor}.sh",
            "--use-cache",
            package_cache,
        )
    return dist


def run_checks(env: str) -> list[str]:
    q = shlex.quote(env)
    return [
        f"{q}/bin/python /dist/check.py {q}",
        f"{q}/bin/normalizer --version",
        f"{q}/bin/python -m venv /tmp/venv",
        "/tmp/venv/bin/python -c 'import sys; print(\"venv\", sys.prefix)'",
        "rm -rf /tmp/venv",
    ]


@pytest.mark.parametrize("minor", MINORS)
@pytest.mark.parametrize("target", ["busybox", "trixie"])
def test_portable_cpython_runs_moves_and_relocates(
    request: pytest.FixtureRequest, python_archives: Path, minor: str, target: str
) -> None:
    root = request.getfixturevalue(f"{target}_root")
    env, moved = "/opt/app one/env", "/srv/elsewhere/env"
    lines = [
        f"sh /dist/app-{minor}.sh -o '/opt/app one'",
        *run_checks(env),
        f"'{env}/bin/python' -m ensurepip --default-pip > /dev/null",
        f"'{env}/bin/python' -m pip install -q --no-index /dist/tiny-1.0-py3-none-any.whl",
        f"'{env}/bin/python' -c 'import tiny; print(tiny.VALUE)'",
        "mkdir -p /srv/elsewhere",
        f"mv '{env}' {moved}",
        f"{moved}/bin/portenv-relocate",
        *run_checks(moved),
    ]
    result = run_in_rootfs(
        root, ["/bin/sh", "-c", "set -e\n" + "\n".join(lines)], binds=[(python_archives, "/dist")]
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert result.stdout.count(f"checks ok {minor}.") == 2
    assert result.stdout.count("Charset-Normalizer") == 2
    assert "venv /tmp/venv\n" in result.stdout
    assert "tiny installed" in result.stdout, "pip install works inside the unpacked env"
    certs = [int(line.rsplit(" ", 1)[1]) for line in result.stdout.splitlines() if "certs" in line]
    assert certs and min(certs) > 0, "certifi's bundle is used on a machine without one"
    assert_only_under(result, ["/opt/app one", "/srv/elsewhere"])


def test_old_glibc_is_refused_before_writing(python_archives: Path, bullseye_root: Path) -> None:
    result = run_in_rootfs(
        bullseye_root,
        ["/bin/sh", "/dist/app-3.12.sh", "-o", "/opt"],
        binds=[(python_archives, "/dist")],
    )
    assert result.returncode == 4
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and "glibc" in first and "2.31" in first
    assert result.changed == []

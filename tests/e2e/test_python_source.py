"""The conda-free source: a local CPython + PyPI requirements, packed and run on bare targets.

Requirements come from a requirements file, or from a project's uv.lock made at test time
against the real index (taken as locked, not re-resolved). The interpreter is a pyenv build,
or a python-build-standalone install_only archive: a STAND-IN of PBS's shape made from a pyenv
build (tests/support/standalone.py), since real PBS archives are on GitHub only.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
import tomlkit

from portenv._uv import run_uv
from tests.conftest import portenv
from tests.e2e.test_core import OUTSIDE_LIBS, assert_only_under
from tests.support.pypilock import make_wheel
from tests.support.pyrelocate import installed_pythons
from tests.support.rootfs import RootfsResult, run_in_rootfs
from tests.support.standalone import install_only_archive

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


def interpreters(minors: list[str]) -> dict[str, Path]:
    """The pyenv (or PATH) CPython of each minor; a missing one fails the test."""
    found = installed_pythons(minors)
    missing = [m for m in minors if m not in found]
    if missing:
        pytest.fail(f"CPython {missing} not found (pyenv or PATH), the test needs them")
    return found


def dist_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder bound at /dist: the check script, the /proc/self/maps helper, a tiny wheel."""
    dist = tmp_path_factory.mktemp(name)
    (dist / "check.py").write_text(CHECK)
    shutil.copy(OUTSIDE_LIBS, dist / "outside_libs.py")
    make_wheel(dist, "tiny", "1.0", files={"tiny.py": "VALUE = 'tiny installed'\n"})
    return dist


@pytest.fixture(scope="module")
def python_archives(package_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """app-3.X.sh for each interpreter found, with idna, certifi and charset-normalizer."""
    found = interpreters(MINORS)
    dist = dist_folder(tmp_path_factory, "python-source")
    requirements = dist / "requirements.txt"
    requirements.write_text("idna\ncertifi\ncharset-normalizer\n")
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


ENV, MOVED = "/opt/app one/env", "/srv/elsewhere/env"


def unpack_move_relocate(archive: str) -> list[str]:
    """Unpack /dist/ARCHIVE, check it, pip-install into it, move it, relocate, check again."""
    env, moved = ENV, MOVED
    return [
        f"sh /dist/{archive} -o '/opt/app one'",
        *run_checks(env),
        f"'{env}/bin/python' -m ensurepip --default-pip > /dev/null",
        f"'{env}/bin/python' -m pip install -q --no-index /dist/tiny-1.0-py3-none-any.whl",
        f"'{env}/bin/python' -c 'import tiny; print(tiny.VALUE)'",
        "mkdir -p /srv/elsewhere",
        f"mv '{env}' {moved}",
        f"{moved}/bin/portenv-relocate",
        *run_checks(moved),
    ]


def assert_ran_moved_and_relocated(result: RootfsResult, minor: str) -> None:
    """What unpack_move_relocate must print, and nothing loaded from outside the env."""
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert result.stdout.count(f"checks ok {minor}.") == 2
    assert result.stdout.count("Charset-Normalizer") == 2
    assert "venv /tmp/venv\n" in result.stdout
    assert "tiny installed" in result.stdout, "pip install works inside the unpacked env"
    certs = [int(line.rsplit(" ", 1)[1]) for line in result.stdout.splitlines() if "certs" in line]
    assert certs and min(certs) > 0, "certifi's bundle is used on a machine without one"
    assert_only_under(result, ["/opt/app one", "/srv/elsewhere"])


@pytest.mark.parametrize("minor", MINORS)
@pytest.mark.parametrize("target", ["busybox", "trixie"])
def test_portable_cpython_runs_moves_and_relocates(
    request: pytest.FixtureRequest, python_archives: Path, minor: str, target: str
) -> None:
    root = request.getfixturevalue(f"{target}_root")
    script = "set -e\n" + "\n".join(unpack_move_relocate(f"app-{minor}.sh"))
    result = run_in_rootfs(root, ["/bin/sh", "-c", script], binds=[(python_archives, "/dist")])
    assert_ran_moved_and_relocated(result, minor)


def test_a_bare_interpreter_as_a_one_file_app(
    package_cache: Path, busybox_root: Path, tmp_path: Path
) -> None:
    """`--entry python`: ./py.sh SCRIPT runs the portable CPython from the per-user cache."""
    python = interpreters(["3.12"])["3.12"]
    portenv(
        "pack",
        "--python",
        python,
        "-o",
        tmp_path / "py.sh",
        "--entry",
        "python",
        "--use-cache",
        package_cache,
    )
    (tmp_path / "app.py").write_text("import sys\nprint('app', sys.argv[1:], sys.prefix)\n")
    lines = [
        "export HOME=/home/u && mkdir -p $HOME && cd /dist",
        "./py.sh app.py 'a b' && ./py.sh app.py c",
    ]
    result = run_in_rootfs(
        busybox_root, ["/bin/sh", "-c", "\n".join(lines)], binds=[(tmp_path, "/dist")]
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith("app ['a b'] /home/u/.cache/portenv/")
    assert second == first.replace("['a b']", "['c']")


OLD_IDNA = "3.6"
"""Not the newest idna: the lock is moved to it, so a fresh resolution would differ."""


@pytest.fixture(scope="module")
def uv_locked_archive(package_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """app-uv.sh from a project's pyproject.toml and the uv.lock `uv lock` made for it."""
    python = interpreters(["3.12"])["3.12"]
    dist = dist_folder(tmp_path_factory, "uv-project")
    project = dist / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "1.0"\nrequires-python = ">=3.9"\n'
        'dependencies = ["idna", "certifi", "charset-normalizer"]\n'
    )
    for pin in ([], ["--upgrade-package", f"idna=={OLD_IDNA}"]):
        done = run_uv(["lock", "--python", str(python), *pin], cwd=project)
        assert done.returncode == 0, done.stderr
    portenv(
        "pack",
        "--python",
        python,
        "--project",
        project,
        "-o",
        dist / "app-uv.sh",
        "--use-cache",
        package_cache,
    )
    return dist


def test_a_uv_locked_project_runs_as_locked(uv_locked_archive: Path, busybox_root: Path) -> None:
    lock = tomlkit.parse((uv_locked_archive / "project" / "uv.lock").read_text()).unwrap()
    locked = {p["name"]: p["version"] for p in lock["package"]}
    assert locked["idna"] == OLD_IDNA
    lines = [
        *unpack_move_relocate("app-uv.sh"),
        f"{MOVED}/bin/python -c 'import idna, certifi; print(\"idna\", idna.__version__)'",
        f"{MOVED}/bin/python -m pip list --format freeze",
    ]
    script = "set -e\n" + "\n".join(lines)
    result = run_in_rootfs(
        busybox_root, ["/bin/sh", "-c", script], binds=[(uv_locked_archive, "/dist")]
    )
    assert_ran_moved_and_relocated(result, "3.12")
    assert f"idna {OLD_IDNA}\n" in result.stdout
    for name in ("idna", "certifi", "charset-normalizer"):
        assert f"{name}=={locked[name]}\n" in result.stdout, f"{name} is not the locked version"


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


@pytest.fixture(scope="module")
def standalone_archive_env(package_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """app-pbs.sh: --python cpython-3.12.X+standin-...-install_only.tar.gz -r requirements,
    without the env's pip: the archive's own site-packages (PBS ships pip there) stays out."""
    archive = install_only_archive("3.12")
    dist = dist_folder(tmp_path_factory, "standalone")
    requirements = dist / "requirements.txt"
    requirements.write_text("idna\ncertifi\ncharset-normalizer\n")
    portenv(
        "pack",
        "--no-pip",
        "--python",
        archive,
        "-r",
        requirements,
        "-o",
        dist / "app-pbs.sh",
        "--use-cache",
        package_cache,
    )
    return dist


def test_a_standalone_archive_packs_and_relocates(
    standalone_archive_env: Path, busybox_root: Path
) -> None:
    """The archive's own site-packages (PBS ships pip there) stays out; the rest as above."""
    probe = "/opt/probe/env/lib/python3.12/site-packages"
    lines = [
        "sh /dist/app-pbs.sh -o /opt/probe > /dev/null",
        f"ls {probe} | grep -v -e idna -e certifi -e charset -e normalizer -e portenv"
        " -e __pycache__ && exit 9",
        f"test -d {probe}/idna && echo 'only the requirements in site-packages'",
        "rm -rf /opt/probe",
        *unpack_move_relocate("app-pbs.sh"),
    ]
    script = "set -e\n" + "\n".join(lines)
    result = run_in_rootfs(
        busybox_root, ["/bin/sh", "-c", script], binds=[(standalone_archive_env, "/dist")]
    )
    assert "only the requirements in site-packages" in result.stdout, result.stdout
    assert_ran_moved_and_relocated(result, "3.12")

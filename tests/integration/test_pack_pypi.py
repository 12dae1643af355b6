"""Packing PyPI entries: hashes checked or recorded, misfits and conflicts refused with reasons."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import rattler

from tests.conftest import portenv
from tests.integration.test_pack import payload_of
from tests.support.pypilock import make_sdist, make_wheel, write_pypi_project
from tests.unit.test_user_code import folder_project

PY = ["python 3.12.*"]


def packages_json(archive: Path) -> list[dict[str, object]]:
    member = payload_of(archive).extractfile(".portenv/packages.json")
    assert member is not None
    return json.loads(member.read())  # type: ignore[no-any-return]


def add_pypi_entry(
    project: Path, name: str, version: str, location: str, *, keep_pypi: bool = True
) -> None:
    """Add one PyPI entry to the project's lock (py-rattler writes it; no hash is recorded)."""
    env = rattler.LockFile.from_path(project / "pixi.lock").default_environment()
    assert env is not None
    platform = env.platforms()[0]
    lock = rattler.LockFile([platform])  # a lock read from disk cannot be changed: copy it
    lock.set_channels("default", env.channels())
    for record in env.conda_repodata_records()[platform.name]:
        lock.add_conda_package("default", platform, record)
    for kept in env.pypi_packages().get(platform.name, []) if keep_pypi else []:
        lock.add_pypi_package("default", platform, kept.name, kept.version, kept.location)
    lock.add_pypi_package("default", platform, name, version, location)
    lock.to_path(project / "pixi.lock")


def local_wheel(folder: Path, name: str = "tool", tag: str = "py3-none-any") -> Path:
    return make_wheel(
        folder,
        name,
        "1.0",
        tag=tag,
        files={f"{name}/__init__.py": "def main():\n    print('hi')\n"},
        console_scripts={name: f"{name}:main"},
    )


@pytest.mark.network
def test_wheel_without_a_lock_hash_is_hashed_and_recorded(
    local_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    wheel = local_wheel(tmp_path)
    expected = hashlib.sha256(wheel.read_bytes()).hexdigest()
    project = write_pypi_project(
        tmp_path / "p", local_channel, PY, ["idna"], local_wheels=[wheel], with_hashes=False
    )
    out = tmp_path / "env.tar"
    portenv("pack", project, "-o", out, "--use-cache", package_cache)
    entries = {e["name"]: e for e in packages_json(out) if e["kind"] == "pypi"}
    assert entries["tool"]["sha256"] == expected
    assert entries["tool"]["sha256_from"] == "computed"
    assert entries["idna"]["sha256_from"] == "computed"
    assert re.fullmatch(r"[0-9a-f]{64}", str(entries["idna"]["sha256"]))
    names = set(payload_of(out).getnames())
    site = "lib/python3.12/site-packages"
    assert f"{site}/tool-1.0.dist-info/direct_url.json" in names, "a path dependency is direct"
    idna_info = [n for n in names if n.startswith(f"{site}/idna-") and n.endswith(".dist-info")]
    assert idna_info and f"{idna_info[0]}/direct_url.json" not in names, "an index download is not"
    assert f"{idna_info[0]}/INSTALLER" in names and f"{idna_info[0]}/RECORD" in names


def test_wheel_hash_mismatch_aborts_naming_the_package(
    local_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    wheel = local_wheel(tmp_path)
    project = write_pypi_project(tmp_path / "p", local_channel, PY, [], local_wheels=[wheel])
    (project / wheel.name).write_bytes(local_wheel(tmp_path / "other", "tool").read_bytes() + b"x")
    done = portenv(
        "pack", project, "-o", tmp_path / "env.sh", "--use-cache", package_cache, check=False
    )
    assert done.returncode == 1
    first = done.stderr.splitlines()[0]
    assert first.startswith("error: hash mismatch for tool: expected sha256:")
    assert not (tmp_path / "env.sh").exists()


def test_foreign_wheel_is_refused_then_skipped(
    local_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    wheel = local_wheel(tmp_path, "native", "cp39-cp39-manylinux2014_aarch64")
    project = write_pypi_project(tmp_path / "p", local_channel, PY, [], local_wheels=[wheel])
    plan = json.loads(portenv("plan", project, "--json").stdout)
    native = next(p for p in plan["pypi"] if p["name"] == "native")
    assert native["action"] == "refuse"
    assert "do not fit CPython 3.12 on linux-64" in native["reason"]
    assert any("native" in problem for problem in plan["problems"])
    done = portenv(
        "pack", project, "-o", tmp_path / "env.sh", "--use-cache", package_cache, check=False
    )
    assert done.returncode == 1 and "do not fit CPython 3.12" in done.stderr
    skipped = portenv(
        "pack",
        project,
        "-o",
        tmp_path / "env.sh",
        "--use-cache",
        package_cache,
        "--skip-pypi",
        "native",
    )
    assert "warning: skipping PyPI package native 1.0" in skipped.stderr


def test_conda_and_pypi_conflict_is_refused(
    local_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    wheel = local_wheel(tmp_path, "hello_py")
    project = write_pypi_project(
        tmp_path / "p", local_channel, [*PY, "hello-py"], [], local_wheels=[wheel]
    )
    done = portenv(
        "pack", project, "-o", tmp_path / "env.sh", "--use-cache", package_cache, check=False
    )
    assert done.returncode == 1
    assert "is installed both by conda and by PyPI" in done.stderr


@pytest.mark.network
def test_sdist_is_built_once_and_cached(
    local_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    sdist = make_sdist(tmp_path, "cached-sdist", "1.0", module_source="X = 1\n")
    project = write_pypi_project(tmp_path / "p", local_channel, PY, [], local_sdists=[sdist])
    plan = json.loads(portenv("plan", project, "--json").stdout)
    assert [(p["name"], p["kind"], p["action"]) for p in plan["pypi"]] == [
        ("cached-sdist", "sdist", "build")
    ]
    portenv("pack", project, "-o", tmp_path / "a.tar", "--use-cache", package_cache)
    sha = hashlib.sha256(sdist.read_bytes()).hexdigest()
    built = list((package_cache / "built").glob(f"{sha}-python3.12/*.whl"))
    assert len(built) == 1 and built[0].name.startswith("cached_sdist-1.0-")
    stamp = built[0].stat().st_mtime_ns
    portenv("pack", project, "-o", tmp_path / "b.tar", "--use-cache", package_cache)
    assert built[0].stat().st_mtime_ns == stamp, "the second pack must reuse the built wheel"
    entry = next(e for e in packages_json(tmp_path / "b.tar") if e["name"] == "cached-sdist")
    assert entry["built_from_source"] is True and entry["sha256"] == sha


@pytest.mark.network
def test_git_dependency_is_cloned_at_its_commit_and_built(
    local_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    sdist = make_sdist(tmp_path, "from-git", "0.2", module_source="VALUE = 'git'\n")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    shutil.move(str(next((tmp_path / "unpacked").iterdir())), repo)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "v0.2"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    project = write_pypi_project(tmp_path / "p", local_channel, PY, [])
    add_pypi_entry(project, "from-git", "0.2", f"git+{repo.as_uri()}#{commit}")
    plan = json.loads(portenv("plan", project, "--json").stdout)
    assert [(p["kind"], p["action"]) for p in plan["pypi"]] == [("git", "build")]
    portenv("pack", project, "-o", tmp_path / "env.tar", "--use-cache", package_cache)
    payload = payload_of(tmp_path / "env.tar")
    info = payload.extractfile(
        "lib/python3.12/site-packages/from_git-0.2.dist-info/direct_url.json"
    )
    assert info is not None
    assert json.loads(info.read())["vcs_info"] == {"vcs": "git", "commit_id": commit}
    entry = next(e for e in packages_json(tmp_path / "env.tar") if e["name"] == "from-git")
    assert entry["commit"] == commit


def test_an_editable_path_dependency_is_installed_as_a_normal_copy(
    local_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    """pixi's `{ path = ".", editable = true }`: built from the folder the lock records."""
    project = write_pypi_project(tmp_path / "p", local_channel, PY, [])
    folder_project(project / "own", "ownpkg")
    add_pypi_entry(project, "ownpkg", "0.1", "./own")
    manifest = project / "pixi.toml"
    manifest.write_text(manifest.read_text() + 'ownpkg = { path = "./own", editable = true }\n')
    note = (
        "note: ownpkg (./own) is editable in the source: installed as a normal "
        "(non-editable) copy, built now"
    )
    planned = portenv("plan", project)
    assert note in planned.stdout.splitlines()
    assert (
        "ownpkg                       0.1            editable build from source" in planned.stdout
    )
    out = tmp_path / "env.tar"
    done = portenv("pack", project, "-o", out, "--use-cache", package_cache)
    assert note in done.stderr.splitlines()
    payload = payload_of(out)
    site = "lib/python3.12/site-packages"
    names = payload.getnames()
    assert f"{site}/ownpkg/__init__.py" in names and "bin/ownpkg" in names
    assert not [n for n in names if n.endswith(".pth") and "ownpkg" in n]
    info = payload.extractfile(f"{site}/ownpkg-0.1.dist-info/direct_url.json")
    assert info is not None
    own = (project / "own").resolve().as_uri()
    assert json.loads(info.read()) == {"url": own, "dir_info": {}}
    entry = next(e for e in packages_json(out) if e["name"] == "ownpkg")
    assert entry["built_from_source"] is True and entry["source_folder"] is True
    (project / "own" / "ownpkg" / "__init__.py").write_text("CHANGED = True\n")
    portenv("pack", project, "-o", out, "--use-cache", package_cache)
    member = payload_of(out).extractfile(f"{site}/ownpkg/__init__.py")
    assert member is not None and member.read() == b"CHANGED = True\n", "a folder is never cached"


@pytest.mark.network
def test_direct_https_url_is_fetched_verified_and_recorded(
    local_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    """A `direct+https://` location (a URL dependency) is downloaded like an index wheel."""
    project = write_pypi_project(tmp_path / "p", local_channel, PY, ["idna"])
    env = rattler.LockFile.from_path(project / "pixi.lock").default_environment()
    assert env is not None
    idna = env.pypi_packages()[env.platforms()[0].name][0]
    assert idna.hashes is not None and idna.hashes.sha256 is not None
    assert idna.location.startswith("https://")
    add_pypi_entry(project, "idna", idna.version, f"direct+{idna.location}", keep_pypi=False)
    portenv("pack", project, "-o", tmp_path / "env.tar", "--use-cache", package_cache)
    entry = next(e for e in packages_json(tmp_path / "env.tar") if e["name"] == "idna")
    assert entry["sha256"] == idna.hashes.sha256.hex() and entry["sha256_from"] == "computed"
    names = payload_of(tmp_path / "env.tar").getnames()
    direct = [n for n in names if n.endswith(".dist-info/direct_url.json") and "/idna-" in n]
    assert direct, "a URL dependency records PEP 610 direct_url.json"


C_SOURCE = """
#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_fast", NULL, -1, methods};
PyMODINIT_FUNC PyInit__fast(void) { return PyModule_Create(&mod); }
"""


def c_extension_sdist(folder: Path) -> Path:
    """An sdist-only package with a C extension (setuptools, built with the system compiler)."""
    tree = folder / "cext-src"
    (tree / "cext_demo").mkdir(parents=True)
    (tree / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "cext-demo"\nversion = "0.1"\n'
    )
    (tree / "setup.py").write_text(
        "from setuptools import Extension, setup\n"
        'setup(ext_modules=[Extension("cext_demo._fast", ["cext_demo/fast.c"])],'
        ' packages=["cext_demo"])\n'
    )
    (tree / "cext_demo" / "__init__.py").write_text("from cext_demo._fast import answer\n")
    (tree / "cext_demo" / "fast.c").write_text(C_SOURCE)
    from uv import find_uv_bin

    out = folder / "sdist"
    subprocess.run(
        [str(find_uv_bin()), "build", "--sdist", "--quiet", str(tree), "-o", str(out)], check=True
    )
    return next(out.glob("*.tar.gz"))


@pytest.mark.network
def test_c_extension_sdist_is_built_for_the_env_and_runs_after_unpack(
    local_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    sdist = c_extension_sdist(tmp_path)
    project = write_pypi_project(tmp_path / "p", local_channel, PY, [], local_sdists=[sdist])
    portenv("pack", project, "-o", tmp_path / "env.sh", "--use-cache", package_cache)
    dest = tmp_path / "deployed"
    subprocess.run(
        ["sh", str(tmp_path / "env.sh"), "-o", str(dest)], check=True, capture_output=True
    )
    done = subprocess.run(
        [str(dest / "env/bin/python"), "-c", "import cext_demo; print(cext_demo.answer())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "42\n"
    site = dest / "env/lib/python3.12/site-packages/cext_demo"
    assert [p.name for p in site.glob("_fast.cpython-312-*.so")], "built for the env's python"
    site = dest / "env/lib/python3.12/site-packages/cext_demo"
    assert [p.name for p in site.glob("_fast.cpython-312-*.so")], "built for the env's python"

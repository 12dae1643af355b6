"""pixi.lock in and out: real locks read, rewritten and checked against their manifests.

No solving here: the lock writer and the satisfiability check work on what the lock holds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import rattler
import yaml

from portenv import _rattler
from portenv.errors import LockFileError, ManifestError
from portenv.project.check import differences
from portenv.project.environments import environments
from portenv.project.lockfile import LockState, read_state, write_state
from portenv.project.manifest import Manifest, Where
from tests.support.condapkg import PackageFile, make_conda_package
from tests.unit.test_author_manifest import copy_project

READABLE = [
    "v4-multiple-environments",
    "v6-simple-python",
    "v7-named-platforms",
    "webserver",
]


def packages(state: LockState) -> dict[str, dict[str, list[str]]]:
    """Conda URLs per environment and platform."""
    return {
        name: {p: sorted(c.url for c in pkgs) for p, pkgs in env.conda.items() if pkgs}
        for name, env in state.environments.items()
    }


@pytest.mark.parametrize("name", READABLE)
def test_real_locks_are_rewritten_without_losing_a_package(name: str, tmp_path: Path) -> None:
    project = copy_project(name, tmp_path)
    state = read_state(project / "pixi.lock")
    write_state(project / "rewritten.lock", state, project)
    again = read_state(project / "rewritten.lock")
    assert packages(again) == packages(state)
    assert [p.name for p in again.platforms] == [p.name for p in state.platforms]


def test_a_v7_lock_rewritten_is_byte_identical(tmp_path: Path) -> None:
    project = copy_project("v7-named-platforms", tmp_path)
    write_state(project / "again.lock", read_state(project / "pixi.lock"), project)
    assert (project / "again.lock").read_bytes() == (project / "pixi.lock").read_bytes()


@pytest.mark.parametrize("name", READABLE)
def test_pixis_own_locks_satisfy_their_manifests(name: str, tmp_path: Path) -> None:
    project = copy_project(name, tmp_path)
    envs = environments(Manifest.from_path(project))
    assert differences(envs, read_state(project / "pixi.lock")) == []


def test_an_edited_manifest_makes_the_lock_stale_where_it_changed(tmp_path: Path) -> None:
    project = copy_project("webserver", tmp_path)
    manifest = Manifest.from_path(project)
    manifest.set_dependency("conda", "fastapi", ">=0.112")
    manifest.remove_dependency("conda", "ruff", Where("dev"))
    found = [str(d) for d in differences(environments(manifest), read_state(project / "pixi.lock"))]
    wanted = "default [linux-64]: fastapi >=0.112 is not satisfied by the locked fastapi 0.111.0"
    assert any(d.startswith(wanted) for d in found)
    assert "default [linux-64]: locked ruff 0.4.7 is no longer required" in found
    assert not any("prod" in d and "ruff" in d for d in found)


def test_locks_portenv_cannot_handle_are_refused_clearly(tmp_path: Path) -> None:
    old = copy_project("v1-old-lockfile", tmp_path)
    with pytest.raises(LockFileError, match="v1") as caught:
        read_state(old / "pixi.lock")
    assert caught.value.hint
    source = copy_project("v7-source-packages", tmp_path)
    state = read_state(source / "pixi.lock")
    with pytest.raises(LockFileError, match="source packages"):
        write_state(source / "out.lock", state, source)
    assert not (source / "out.lock").exists()
    with pytest.raises(ManifestError, match="built from source"):
        environments(Manifest.from_path(source))


# --- writing what py-rattler cannot ------------------------------------------------------


@pytest.fixture
def local_record(tmp_path: Path) -> Any:
    """A conda package in a channel folder inside a project, indexed."""
    project = tmp_path / "project"
    channel = project / "channel"
    make_conda_package(channel, "tool", [PackageFile("bin/tool", b"#!/bin/sh\n")])
    (channel / "noarch").mkdir()
    import asyncio

    asyncio.run(rattler.index.index_fs(channel, write_zst=False, write_shards=False))
    return _rattler.solve([channel.as_uri()], ["tool"], subdir="linux-64", virtual_packages=())[0]


def state_with(record: Any, dists: tuple[_rattler.PypiEntry, ...]) -> LockState:
    return LockState(
        (_rattler.LockedPlatform("linux-64", "linux-64", ("__glibc=2.28",)),),
        {
            "default": _rattler.LockedEnvironmentContent(
                ("./channel",), {"linux-64": (record,)}, {"linux-64": dists}, {}
            )
        },
        {"default": ("https://pypi.org/simple",)},
    )


IDNA = _rattler.PypiEntry(
    "IDNA",
    "3.7",
    "https://files.pythonhosted.org/packages/x/idna-3.7-py3-none-any.whl",
    "a" * 64,
    ("ruff>=0.1 ; extra == 'all'", 'pytest ; extra == "all"'),
    ">=3.6",
)


def test_pypi_fields_and_indexes_are_written_in_rattlers_order(
    local_record: Any, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    write_state(project / "pixi.lock", state_with(local_record, (IDNA,)), project)
    document = yaml.safe_load((project / "pixi.lock").read_text())
    (entry,) = [e for e in document["packages"] if "pypi" in e]
    assert list(entry) == ["pypi", "name", "version", "sha256", "requires_dist", "requires_python"]
    assert entry["name"] == "idna" and entry["sha256"] == "a" * 64
    assert len(entry["requires_dist"]) == 2 and entry["requires_python"] == ">=3.6"
    environment = document["environments"]["default"]
    assert list(environment) == ["channels", "indexes", "packages"]
    assert environment["indexes"] == ["https://pypi.org/simple"]
    (pypi,) = read_state(project / "pixi.lock").environments["default"].pypi["linux-64"]
    assert (pypi.sha256, pypi.requires_python, len(pypi.requires_dist)) == ("a" * 64, ">=3.6", 2)


def test_packages_of_a_channel_inside_the_project_are_relative(
    local_record: Any, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    write_state(project / "pixi.lock", state_with(local_record, ()), project)
    text = (project / "pixi.lock").read_text()
    assert "- conda: ./channel/linux-64/tool-1.0-0.tar.bz2" in text
    assert str(tmp_path) not in text
    moved = tmp_path / "moved" / "elsewhere"
    moved.parent.mkdir()
    project.rename(moved)
    state = read_state(moved / "pixi.lock")
    (package,) = state.environments["default"].conda["linux-64"]
    assert package.url == (moved / "channel/linux-64/tool-1.0-0.tar.bz2").as_uri()
    data = (moved / "channel/linux-64/tool-1.0-0.tar.bz2").read_bytes()
    assert package.sha256 == hashlib.sha256(data).hexdigest()
    lock = _rattler.load_lock(moved / "pixi.lock")
    located = _rattler.locked_environment(lock, "default", "linux-64", moved)
    assert [p.url for p in located.conda] == [package.url]


def test_a_failed_write_leaves_the_old_lock(local_record: Any, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "pixi.lock").write_text("version: 6\n")
    broken = state_with(local_record, ())
    broken.environments["default"].conda["nowhere"] = (local_record,)  # no such platform
    with pytest.raises(Exception):  # noqa: B017 - rattler's own exception type
        write_state(project / "pixi.lock", broken, project)
    assert (project / "pixi.lock").read_text() == "version: 6\n"
    assert sorted(p.name for p in project.iterdir()) == ["channel", "pixi.lock"]

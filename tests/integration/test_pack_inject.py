"""`portenv pack --format pixi-pack --inject FILE`: a local package joins the archive when it fits.

The real ``webserver`` project (pixi's docker example) ships its own package twice:
``my-webserver`` fits its lock, ``my-webserver-broken`` needs ``fastapi >=0.112`` where the lock
has 0.111.0. Its conda-forge packages cannot be downloaded here, so the check must (and does)
decide from the lock's records alone; a packable variant uses the local channel.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from portenv.errors import InputError
from portenv.pack import PlanRequest, plan
from portenv.source.inject import inject
from tests.conftest import portenv
from tests.support.condapkg import PackageFile, make_conda_package
from tests.unit.test_author_manifest import copy_project

GOOD = "my-webserver-0.1.0-pyh4616a5c_0.conda"
BROKEN = "my-webserver-broken-0.1.0-pyh4616a5c_0.conda"


@pytest.fixture
def webserver(tmp_path: Path) -> Path:
    """A writable copy of the real project, with its two local packages."""
    return copy_project("webserver", tmp_path)


def test_the_fitting_package_joins_the_plan(webserver: Path) -> None:
    the_plan = plan(PlanRequest(webserver, environment="prod", platform="linux-64"))
    joined = inject(the_plan, [webserver / GOOD])
    added = [p for p in joined.conda if p.name == "my-webserver"]
    assert len(added) == 1 and added[0].subdir == "noarch"
    assert added[0].url == (webserver / GOOD).resolve().as_uri()
    assert joined.conda[: len(the_plan.conda)] == the_plan.conda


def test_the_broken_package_is_refused_naming_fastapi(webserver: Path) -> None:
    the_plan = plan(PlanRequest(webserver, environment="prod", platform="linux-64"))
    with pytest.raises(InputError) as caught:
        inject(the_plan, [webserver / BROKEN])
    assert "unmet dependency fastapi >=0.112 (locked: fastapi 0.111.0)" in str(caught.value)


def test_the_cli_refuses_before_downloading(webserver: Path, tmp_path: Path) -> None:
    out = tmp_path / "environment.tar"
    argv: list[str | Path] = [
        "pack",
        webserver,
        "--format",
        "pixi-pack",
        "--inject",
        webserver / BROKEN,
    ]
    done = portenv(*argv, "-o", out, "--use-cache", tmp_path / "cache", check=False)
    assert done.returncode == 1
    first, hint = done.stderr.strip().splitlines()
    assert first == f"error: cannot inject {BROKEN}: unmet dependency fastapi >=0.112 " + (
        "(locked: fastapi 0.111.0)"
    )
    assert hint.strip().startswith("hint:")
    assert not out.exists() and not (tmp_path / "cache").exists()


def _addon(tmp_path: Path, depends: tuple[str, ...]) -> Path:
    files = [PackageFile("share/addon/README", b"an injected package\n")]
    return make_conda_package(tmp_path / "local", "addon", files, subdir="noarch", depends=depends)


def pack_injecting(
    project: Path, addon: Path, out: Path, cache: Path, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`portenv pack PROJECT --format pixi-pack --inject ADDON -o OUT`, as a user runs it."""
    argv: list[str | Path] = ["pack", project, "--format", "pixi-pack", "--inject", addon]
    return portenv(*argv, "-o", out, "--use-cache", cache, check=check)


def test_a_fitting_package_lands_in_the_archive(
    core_project: Path, package_cache: Path, tmp_path: Path
) -> None:
    addon = _addon(tmp_path, ("greet >=1", "python >=3.12"))
    archives = [tmp_path / "a.tar", tmp_path / "b.tar"]
    for out in archives:
        pack_injecting(core_project, addon, out, package_cache)
    assert archives[0].read_bytes() == archives[1].read_bytes()
    with tarfile.open(archives[0]) as archive:
        names = archive.getnames()
        repodata = archive.extractfile("channel/noarch/repodata.json")
        environment = archive.extractfile("environment.yml")
        assert repodata is not None and environment is not None
        records = json.loads(repodata.read())["packages"]
        pins = environment.read().decode()
    assert f"channel/noarch/{addon.name}" in names
    assert records[addon.name]["depends"] == ["greet >=1", "python >=3.12"]
    assert "addon=1.0=0" in pins


def test_an_unmet_dependency_is_refused(
    core_project: Path, package_cache: Path, tmp_path: Path
) -> None:
    addon = _addon(tmp_path, ("greet >=2",))
    out = tmp_path / "env.tar"
    done = pack_injecting(core_project, addon, out, package_cache, check=False)
    assert done.returncode == 1
    assert "unmet dependency greet >=2 (locked: greet 1.0.0)" in done.stderr
    assert not out.exists()


def test_inject_needs_the_pixi_pack_format(core_project: Path, tmp_path: Path) -> None:
    addon = _addon(tmp_path, ())
    done = portenv("pack", core_project, "--inject", addon, "-o", tmp_path / "e.sh", check=False)
    assert (
        done.returncode == 2 and "--inject adds packages to pixi-pack archives only" in done.stderr
    )

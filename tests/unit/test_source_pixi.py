"""Reading real pixi projects: each plans correctly or fails with one clear line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from portenv.cli import main
from portenv.errors import LockFileError, ManifestError, ResolveError
from portenv.project.lockfile import lock_version
from portenv.source.pixi import PixiProject, editable_names, plan_pixi_project
from tests.support.realdata import REALDATA


@pytest.fixture
def realdata(tmp_path: Path) -> Path:
    """A writable copy of the real projects."""
    target = tmp_path / "projects"
    shutil.copytree(REALDATA, target)
    return target


@pytest.mark.parametrize(
    ("project", "environment", "platform", "subdir", "count", "problems"),
    [
        pytest.param("v4-multiple-environments", "py311", "linux-64", "linux-64", 35, [], id="v4"),
        pytest.param(
            "v6-simple-python", "default", "linux-aarch64", "linux-aarch64", 24, [], id="v6"
        ),
        pytest.param("v7-named-platforms", "default", "p2", "linux-64", 133, [], id="v7-named"),
        pytest.param("webserver", "prod", "linux-64", "linux-64", 60, [], id="webserver"),
        pytest.param(
            "v7-source-packages",
            "default",
            "linux-64",
            "linux-64",
            20,
            ["no python package", "built from source", "built from source", "built from source"],
            id="v7-source",
        ),
        pytest.param(
            "v6-simple-python",
            "default",
            "osx-arm64",
            "osx-arm64",
            16,
            ["is not Linux"],
            id="osx-refused",
        ),
    ],
)
def test_real_projects_plan(
    realdata: Path,
    project: str,
    environment: str,
    platform: str,
    subdir: str,
    count: int,
    problems: list[str],
) -> None:
    plan = plan_pixi_project(
        PixiProject.from_path(realdata / project), environment=environment, platform=platform
    )
    assert (plan.environment, plan.platform, plan.subdir) == (environment, platform, subdir)
    assert len(plan.conda) == count
    assert len(plan.problems) == len(problems)
    for problem, expected in zip(plan.problems, problems, strict=True):
        assert expected in problem
    assert all(p.sha256 and len(p.sha256) == 64 for p in plan.conda)
    assert all(p.subdir in (subdir, "noarch") for p in plan.conda)
    assert plan.download_size == sum(p.size or 0 for p in plan.conda) > 0


def test_named_platform_records_lock_glibc(realdata: Path) -> None:
    plan = plan_pixi_project(PixiProject.from_path(realdata / "v7-named-platforms"), platform="p2")
    assert plan.lock_glibc == "2.28"


def test_v1_lock_is_refused_as_too_old(realdata: Path) -> None:
    lock = realdata / "v1-old-lockfile" / "pixi.lock"
    assert lock_version(lock) == 1
    with pytest.raises(LockFileError, match="lock format v1, too old"):
        plan_pixi_project(PixiProject.from_path(lock.parent))


def test_missing_environment_names_the_ones_there(realdata: Path) -> None:
    with pytest.raises(
        ResolveError, match=r"environment nope .* \(it has: default, py311, py312\)"
    ):
        plan_pixi_project(
            PixiProject.from_path(realdata / "v4-multiple-environments"), environment="nope"
        )


def test_missing_platform_names_the_ones_there(realdata: Path) -> None:
    with pytest.raises(ResolveError, match=r"platform linux-ppc64le .* \(it has: "):
        plan_pixi_project(PixiProject.from_path(realdata / "webserver"), platform="linux-ppc64le")


def test_manifest_file_path_works(realdata: Path) -> None:
    plan = plan_pixi_project(PixiProject.from_path(realdata / "v6-simple-python" / "pixi.toml"))
    assert plan.environment == "default"


def test_missing_lock(realdata: Path) -> None:
    (realdata / "v6-simple-python" / "pixi.lock").unlink()
    with pytest.raises(LockFileError, match=r"no pixi\.lock"):
        PixiProject.from_path(realdata / "v6-simple-python")


def test_pyproject_without_tool_pixi_is_not_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ManifestError, match=r"has no \[tool.pixi\] table"):
        PixiProject.from_path(tmp_path)


def test_garbage_lock_is_one_clear_error(realdata: Path) -> None:
    (realdata / "v6-simple-python" / "pixi.lock").write_text("version: 6\nenvironments: [oops\n")
    with pytest.raises(LockFileError, match="cannot read lock file"):
        plan_pixi_project(PixiProject.from_path(realdata / "v6-simple-python"))


def test_plan_json_cli(realdata: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(realdata / "v6-simple-python"), "-p", "linux-64", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"environment", "platform", "conda", "pypi", "problems"} <= set(data)
    assert data["environment"] == "default" and data["platform"] == "linux-64"
    python = next(p for p in data["conda"] if p["name"] == "python")
    assert set(python) >= {"name", "version", "build", "subdir", "url", "sha256", "size"}
    assert python["version"].startswith("3.12")


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        pytest.param(["plan", "v1-old-lockfile"], "error: ", id="v1"),
        pytest.param(["plan", "missing-dir"], "error: project not found: ", id="missing"),
        pytest.param(
            ["plan", "v6-simple-python", "-e", "x"], "error: environment x is not", id="env"
        ),
        pytest.param(
            ["pack", "v6-simple-python", "-o", "x.zip"], "error: unknown output type", id="suffix"
        ),
        pytest.param(
            ["pack", "v7-source-packages", "-o", "o.sh"], "error: cannot pack default", id="refused"
        ),
    ],
)
def test_cli_errors_are_one_line_without_traceback(
    realdata: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    first_line: str,
) -> None:
    monkeypatch.chdir(realdata)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(first_line)
    assert "Traceback" not in err
    assert err.count("\n") == 2 and "\n  hint: " in err


def test_editable_names_from_manifest_tables(tmp_path: Path) -> None:
    pixi = tmp_path / "pixi.toml"
    pixi.write_text(
        "[pypi-dependencies]\n"
        'a = { path = ".", editable = true }\n'
        'b = { path = "./b" }\n'
        'c = ">=1"\n'
        "[feature.dev.pypi-dependencies]\n"
        'D_D = { path = "./d", editable = true }\n'
    )
    assert editable_names(pixi) == {"a", "d-d"}
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\n'
        '[tool.pixi.pypi-dependencies]\nx = { path = ".", editable = true }\n'
    )
    assert editable_names(pyproject) == {"x"}

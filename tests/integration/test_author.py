"""A full authoring session on the local channel, PyPI included (needs PyPI, like pixi would).

init -> add (conda) -> add --pypi -> run a script -> remove -> lock --check, through the
library functions the CLI calls; plus a pyproject workspace, a local wheel and a PyPI
requirement that cannot be met.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import tomlkit

from portenv import author
from portenv.errors import ResolveError
from portenv.pack import PlanRequest, plan
from portenv.project.check import lock_differences
from portenv.project.lockfile import read_state
from tests.support.channel import write_project
from tests.support.pypilock import make_wheel, write_pypi_project


def pypi_locked(project: Path) -> dict[str, str]:
    content = read_state(project / "pixi.lock").environments["default"]
    return {d.key: d.version for d in content.pypi.get("linux-64", ())}


def conda_locked(project: Path) -> set[str]:
    content = read_state(project / "pixi.lock").environments["default"]
    return {p.name for p in content.conda.get("linux-64", ())}


SCRIPT = """\
import os, sys
import idna
print("idna", idna.__version__, "from", os.path.relpath(idna.__file__, sys.prefix))
print("prefix", sys.prefix)
sys.exit(3)
"""


@pytest.mark.network
def test_a_whole_session(
    local_channel: Path, package_cache: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "demo"
    channels = (local_channel.as_uri(),)
    author.init(author.InitRequest(project, channels=channels, platforms=("linux-64",)))
    added = author.add(author.AddRequest(project, ("python=3.12", "hello-py"), cache=package_cache))
    assert added.added == ('python = "3.12.*"', 'hello-py = ">=1.0.0,<2"')
    pypi = author.add(author.AddRequest(project, ("idna",), pypi=True, cache=package_cache))
    (line,) = pypi.added
    assert line.startswith('idna = ">=') and ", <" in line
    assert set(pypi_locked(project)) == {"idna"}
    (project / "test_venv.py").write_text(SCRIPT)
    ran = author.run(
        author.RunRequest(project, ("python", "test_venv.py"), cache=package_cache, cwd=project)
    )
    assert ran.returncode == 3
    out = capfd.readouterr().out
    prefix = project / ".pixi" / "envs" / "default"
    assert f"prefix {prefix}\n" in out
    assert "from lib/python3.12/site-packages/idna/__init__.py" in out
    assert (
        author.run(author.RunRequest(project, ("hello-py",), cache=package_cache)).returncode == 0
    )
    assert capfd.readouterr().out.strip() == f"hello-py {prefix}"
    pinned = pypi_locked(project)
    author.remove(author.RemoveRequest(project, ("hello-py",), cache=package_cache))
    assert conda_locked(project) == {"python"}
    assert pypi_locked(project) == pinned  # the PyPI pins survived the re-solve
    before = (project / "pixi.lock").read_bytes()
    assert author.lock(author.LockRequest(project, check=True)).differences == ()
    assert not author.lock(author.LockRequest(project, cache=package_cache)).changed
    assert (project / "pixi.lock").read_bytes() == before
    the_plan = plan(PlanRequest(project))
    assert the_plan.problems == ()
    assert [p.name for p in the_plan.pypi] == ["idna"]


@pytest.mark.network
def test_a_pyproject_workspace(local_channel: Path, package_cache: Path, tmp_path: Path) -> None:
    project = tmp_path / "pyproj"
    author.init(
        author.InitRequest(
            project, channels=(local_channel.as_uri(),), platforms=("linux-64",), pyproject=True
        )
    )
    author.add(author.AddRequest(project, ("python=3.12",), cache=package_cache))
    added = author.add(author.AddRequest(project, ("idna",), pypi=True, cache=package_cache))
    (line,) = added.added
    assert line.startswith("idna>=") and ", <" in line
    data = tomlkit.parse((project / "pyproject.toml").read_text()).unwrap()
    assert data["project"]["dependencies"] == [line]
    assert data["tool"]["pixi"]["dependencies"] == {"python": "3.12.*"}
    assert "idna" in pypi_locked(project)
    assert lock_differences(project) == ()


def test_a_local_wheel_is_locked_by_relative_path(
    local_channel: Path, package_cache: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "wheels"
    author.init(
        author.InitRequest(project, channels=(local_channel.as_uri(),), platforms=("linux-64",))
    )
    author.add(author.AddRequest(project, ("python=3.12",), cache=package_cache))
    wheel = make_wheel(
        project / "dist",
        "hello-wheel",
        "1.2",
        files={"hello_wheel/__init__.py": "def main() -> None:\n    print('wheel says hi')\n"},
        console_scripts={"hello-wheel": "hello_wheel:main"},
    )
    spec = f"hello-wheel @ {wheel.as_uri()}"
    author.add(author.AddRequest(project, (spec,), pypi=True, cache=package_cache))
    manifest = tomlkit.parse((project / "pixi.toml").read_text()).unwrap()
    location = "./dist/hello_wheel-1.2-py3-none-any.whl"
    assert manifest["pypi-dependencies"] == {"hello-wheel": {"path": location}}
    (dist,) = read_state(project / "pixi.lock").environments["default"].pypi["linux-64"]
    assert dist.location == location
    assert dist.sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()
    moved = tmp_path / "moved"
    shutil.move(project, moved)
    result = author.run(author.RunRequest(moved, ("hello-wheel",), cache=package_cache))
    assert result.returncode == 0
    assert capfd.readouterr().out == "wheel says hi\n"


@pytest.mark.network
def test_an_unresolvable_pypi_requirement_changes_nothing(
    local_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    project = tmp_path / "bad"
    author.init(
        author.InitRequest(project, channels=(local_channel.as_uri(),), platforms=("linux-64",))
    )
    author.add(author.AddRequest(project, ("python=3.12",), cache=package_cache))
    files = {p: p.read_bytes() for p in (project / "pixi.toml", project / "pixi.lock")}
    with pytest.raises(ResolveError) as caught:
        author.add(author.AddRequest(project, ("idna==0.0.0.1",), pypi=True, cache=package_cache))
    assert "idna==0.0.0.1" in str(caught.value)
    assert {p: p.read_bytes() for p in files} == files


@pytest.mark.network
def test_the_test_support_projects_satisfy_portenvs_check(
    local_channel: Path, tmp_path: Path
) -> None:
    project = write_pypi_project(tmp_path / "web", local_channel, ["python 3.12.*"], ["idna"])
    assert lock_differences(project) == ()


def test_the_channel_fixture_projects_satisfy_portenvs_check(
    local_channel: Path, tmp_path: Path
) -> None:
    project = write_project(
        tmp_path / "core",
        local_channel,
        ["python 3.12.*", "greet", "libbar"],
        environments={"tools": ["hello-py"]},
    )
    assert lock_differences(project) == ()

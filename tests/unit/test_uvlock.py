"""A project's uv.lock: exported as locked (markers for the target, hashes kept), stale refused.

The project's index is a local folder of wheels (uv's find-links), so `uv lock` runs offline.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from portenv._uv import run_uv
from portenv.errors import InputError, ResolveError
from portenv.source.requirements import RequirementsInput, resolve_requirements
from tests.support.pypilock import make_wheel

PYPROJECT = """\
[project]
name = "app"
version = "0.1.0"
requires-python = ">=3.9"
dependencies = [{deps}]

[dependency-groups]
dev = ["devtool"]

[tool.uv]
no-index = true
find-links = ["wheels"]
"""
RUNNING = Path(sys.executable)
VERSION = tuple(sys.version_info[:3])


def write_pyproject(project: Path, *deps: str) -> None:
    quoted = ", ".join(f'"{d}"' for d in deps)
    (project / "pyproject.toml").write_text(PYPROJECT.format(deps=quoted))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """app -> tiny -> other (and winonly on Windows only); locked by uv from local wheels."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    requires = ["other>=1", "winonly; sys_platform == 'win32'"]
    make_wheel(wheels, "tiny", "1.0", files={"tiny.py": ""}, requires_dist=requires)
    for name in ("other", "winonly", "devtool"):
        make_wheel(wheels, name, "1.0", files={f"{name}.py": ""})
    write_pyproject(tmp_path, "tiny")
    done = run_uv(["lock", "--offline", "--python", str(RUNNING)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_lock_is_taken_as_it_is_for_the_target(project: Path) -> None:
    """A newer `other` in the index changes nothing: the lock is exported, not re-resolved."""
    make_wheel(project / "wheels", "other", "2.0", files={"other.py": ""})
    packages = resolve_requirements(
        RequirementsInput(project=project), VERSION, "linux-64", interpreter=RUNNING
    )
    assert [(p.name, p.version) for p in packages] == [("other", "1.0"), ("tiny", "1.0")]
    wheels = project / "wheels"
    for package in packages:
        wheel = wheels / f"{package.name}-{package.version}-py3-none-any.whl"
        assert package.url == wheel.as_uri()
        assert package.kind == "wheel" and package.sha256 == sha256(wheel)


def test_a_stale_lock_is_refused(project: Path) -> None:
    write_pyproject(project, "tiny", "devtool")
    with pytest.raises(InputError, match=r"uv.lock is stale: it no longer matches .*pyproject"):
        resolve_requirements(
            RequirementsInput(project=project), VERSION, "linux-64", interpreter=RUNNING
        )


def test_a_lock_for_other_pythons_is_refused(project: Path) -> None:
    with pytest.raises(InputError, match=r"uv.lock is for Python >=3.9, but .* 3.8.18"):
        resolve_requirements(RequirementsInput(project=project), (3, 8, 18), "linux-64")


def test_a_pylock_beside_it_wins(project: Path) -> None:
    (project / "pylock.toml").write_text('lock-version = "1.0"\ncreated-by = "test"\n')
    assert resolve_requirements(RequirementsInput(project=project), VERSION, "linux-64") == ()


def test_requirement_files_are_resolved_instead(project: Path) -> None:
    """With -r, pyproject.toml and the file are resolved together: the lock's pins do not hold."""
    make_wheel(project / "wheels", "other", "2.0", files={"other.py": ""})
    requirements = project / "requirements.txt"
    requirements.write_text(f"--no-index\n--find-links {project / 'wheels'}\nother\n")
    source = RequirementsInput((requirements,), project)
    packages = resolve_requirements(source, VERSION, "linux-64", interpreter=RUNNING)
    assert [(p.name, p.version) for p in packages] == [("other", "2.0"), ("tiny", "1.0")]


A = "a" * 64
MARKED = f"""
lock-version = "1.0"
created-by = "test"
requires-python = ">=3.9"

[[packages]]
name = "split"
version = "1.0"
marker = "python_full_version < '3.10'"
wheels = [{{ url = "https://h.invalid/split-1.0-py3-none-any.whl", hashes = {{ sha256 = "{A}" }} }}]

[[packages]]
name = "split"
version = "2.0"
marker = "python_full_version >= '3.10'"
wheels = [{{ url = "https://h.invalid/split-2.0-py3-none-any.whl", hashes = {{ sha256 = "{A}" }} }}]

[[packages]]
name = "winonly"
version = "1.0"
marker = "sys_platform == 'win32'"
wheels = [{{ url = "https://h.invalid/w-1.0-py3-none-any.whl", hashes = {{ sha256 = "{A}" }} }}]

[[packages]]
name = "devtool"
version = "1.0"
marker = "'dev' in dependency_groups"
wheels = [{{ url = "https://h.invalid/d-1.0-py3-none-any.whl", hashes = {{ sha256 = "{A}" }} }}]
"""


@pytest.mark.parametrize(("version", "split"), [((3, 9, 18), "1.0"), ((3, 12, 1), "2.0")])
def test_markers_choose_the_entries_for_the_target(
    tmp_path: Path, version: tuple[int, int, int], split: str
) -> None:
    (tmp_path / "pylock.toml").write_text(MARKED)
    packages = resolve_requirements(RequirementsInput(project=tmp_path), version, "linux-64")
    assert [(p.name, p.version) for p in packages] == [("split", split)]
    (tmp_path / "pylock.toml").write_text('default-groups = ["dev"]\n' + MARKED)
    default = resolve_requirements(RequirementsInput(project=tmp_path), version, "linux-64")
    assert [p.name for p in default] == ["devtool", "split"]


def test_two_versions_for_the_target_are_refused(tmp_path: Path) -> None:
    (tmp_path / "pylock.toml").write_text(MARKED.replace("< '3.10'", ">= '3'"))
    with pytest.raises(ResolveError, match="two versions of split"):
        resolve_requirements(RequirementsInput(project=tmp_path), (3, 12, 1), "linux-64")

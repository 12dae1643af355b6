"""Manifest edits keep everything else byte for byte: real pixi manifests, read-edit-write.

The real manifests in tests/data/realdata/pixi-projects were written by pixi (and people);
they are copied before anything is edited.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
import tomlkit

from portenv.errors import ManifestError
from portenv.project.manifest import Manifest, Where, find_manifest
from portenv.project.specs import inline_table
from portenv.source.pixi import PixiProject
from tests.support.realdata import REALDATA

PROJECTS = sorted(p.name for p in REALDATA.iterdir())


def copy_project(name: str, tmp_path: Path) -> Path:
    """A writable copy of one real project (the originals are read-only)."""
    target = tmp_path / name
    shutil.copytree(REALDATA / name, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return target


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """(removed, added) lines of a diff."""
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    removed = [line[2:] for line in diff if line.startswith("- ")]
    added = [line[2:] for line in diff if line.startswith("+ ")]
    return removed, added


@pytest.mark.parametrize("name", PROJECTS)
def test_adding_a_dependency_adds_exactly_one_line(name: str, tmp_path: Path) -> None:
    project = copy_project(name, tmp_path)
    manifest = Manifest.from_path(project)
    before = manifest.path.read_text()
    manifest.set_dependency("conda", "zstd", ">=1.5")
    manifest.write()
    removed, added = changed_lines(before, manifest.path.read_text())
    assert removed == []
    assert [line for line in added if line.strip()] == ['zstd = ">=1.5"']
    assert Manifest.from_path(project).dependencies("conda")["zstd"] == ">=1.5"


@pytest.mark.parametrize(
    ("name", "dependency"),
    [
        pytest.param("v4-multiple-environments", "polars", id="v4"),
        pytest.param("v6-simple-python", "openssl", id="v6-inline-table"),
        pytest.param("v7-named-platforms", "pytorch", id="v7"),
        pytest.param("webserver", "uvicorn", id="webserver"),
    ],
)
def test_removing_a_dependency_removes_exactly_its_line(
    name: str, dependency: str, tmp_path: Path
) -> None:
    project = copy_project(name, tmp_path)
    manifest = Manifest.from_path(project)
    before = manifest.path.read_text()
    assert manifest.remove_dependency("conda", dependency)
    after = manifest.dumps()
    removed, added = changed_lines(before, after)
    assert added == []
    assert len(removed) == 1 and removed[0].startswith(f"{dependency} =")
    # every other byte, comments included, is as it was
    assert after == before.replace(removed[0] + "\n", "", 1)


def test_unknown_keys_and_comments_survive_edits(tmp_path: Path) -> None:
    project = copy_project("v6-simple-python", tmp_path)
    manifest = Manifest.from_path(project)
    manifest.set_dependency("pypi", "rich", ">=13")
    manifest.set_dependency("conda", "pip", ">=24")  # replaces in place
    text = manifest.dumps()
    assert "[tool.update]\nautoupdate-schedule = " in text
    assert "# specifically pin this version as we are hardcoding it in the tests" in text
    assert 'pip = ">=24"' in text and 'pip = "*"' not in text
    data = tomlkit.parse(text).unwrap()
    assert data["pypi-dependencies"] == {"rich": ">=13"}
    assert data["tool"] == {"update": {"autoupdate-schedule": "never"}}


def test_feature_and_target_tables_are_created_and_spaced(tmp_path: Path) -> None:
    project = copy_project("v4-multiple-environments", tmp_path)
    manifest = Manifest.from_path(project)
    before = manifest.path.read_text()
    manifest.set_dependency("conda", "pytest", "*", Where("test"))
    manifest.set_dependency("conda", "numpy", "*", Where("py311"))
    manifest.set_dependency("conda", "patchelf", "*", Where(None, "linux-64"))
    text = manifest.dumps()
    removed, added = changed_lines(before, text)
    assert removed == []
    assert [a for a in added if a] == [
        'numpy = "*"',
        "[feature.test.dependencies]",
        'pytest = "*"',
        "[target.linux-64.dependencies]",
        'patchelf = "*"',
    ]
    assert '[feature.py311.dependencies]\npython = "3.11.*"\nnumpy = "*"\n[feature.py312' in text
    data = tomlkit.parse(text).unwrap()
    assert data["feature"]["test"]["dependencies"] == {"pytest": "*"}
    assert data["target"]["linux-64"]["dependencies"] == {"patchelf": "*"}


def test_inline_tables_are_spaced_like_pixi(tmp_path: Path) -> None:
    (tmp_path / "pixi.toml").write_text('[workspace]\nname = "x"\n\n[dependencies]\n')
    manifest = Manifest.from_path(tmp_path)
    manifest.set_dependency("conda", "openssl", inline_table({"version": "3.3.1", "build": "*_0"}))
    assert manifest.dumps().endswith('openssl = { version = "3.3.1", build = "*_0" }\n')


PYPROJECT = """\
[project]
name = "demo"
requires-python = ">=3.12"
dependencies = [
    "requests>=2",  # the HTTP client
]

[tool.pixi.workspace]
channels = ["conda-forge"]
platforms = ["linux-64"]

[tool.ruff]
line-length = 100
"""


def test_pyproject_pypi_dependencies_go_to_project_dependencies(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    manifest = Manifest.from_path(tmp_path)
    manifest.set_dependency("pypi", "rich", ">=13")
    manifest.set_dependency("pypi", "local", {"path": "./local.whl"})
    manifest.set_dependency("conda", "python", "3.12.*")
    assert manifest.remove_dependency("pypi", "Requests")
    text = manifest.dumps()
    data = tomlkit.parse(text).unwrap()
    assert data["project"]["dependencies"] == ["rich>=13"]
    assert data["tool"]["pixi"]["dependencies"] == {"python": "3.12.*"}
    assert data["tool"]["pixi"]["pypi-dependencies"] == {"local": {"path": "./local.whl"}}
    assert data["tool"]["ruff"] == {"line-length": 100}
    assert '[tool.pixi.dependencies]\npython = "3.12.*"\n\n' in text


def test_pyproject_without_tool_pixi_is_not_a_manifest(tmp_path: Path) -> None:
    """One finder for every reader: a folder and the file itself give the same refusal."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ManifestError, match=r"pyproject\.toml has no \[tool.pixi\]"):
        find_manifest(tmp_path)
    with pytest.raises(ManifestError, match=r"no \[tool.pixi\]"):
        Manifest.from_path(tmp_path / "pyproject.toml")
    with pytest.raises(ManifestError, match=r"no \[tool.pixi\]"):
        PixiProject.from_path(tmp_path)
    (tmp_path / "pyproject.toml").unlink()
    with pytest.raises(ManifestError, match=r"no pixi\.toml or pyproject\.toml in"):
        PixiProject.from_path(tmp_path)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "pixi.toml").write_text("[workspace\n")
    with pytest.raises(ManifestError, match="is not valid TOML") as caught:
        Manifest.from_path(tmp_path)
    assert caught.value.hint


def test_removing_what_is_not_there_reports_false(tmp_path: Path) -> None:
    (tmp_path / "pixi.toml").write_text('[workspace]\nname = "x"\n')
    manifest = Manifest.from_path(tmp_path)
    assert not manifest.remove_dependency("conda", "numpy")
    assert not manifest.remove_dependency("pypi", "numpy", Where("dev", "linux-64"))
    assert not manifest.changed


def test_restore_puts_back_the_original_bytes(tmp_path: Path) -> None:
    original = '[workspace]\nname = "x"  # keep\n\n[dependencies]\npython = "3.12.*"\n'
    (tmp_path / "pixi.toml").write_text(original)
    manifest = Manifest.from_path(tmp_path)
    manifest.set_dependency("conda", "numpy", "*")
    manifest.write()
    assert (tmp_path / "pixi.toml").read_text() != original
    manifest.restore()
    assert (tmp_path / "pixi.toml").read_text() == original

"""Console scripts of installed wheels: pip's version-named script follows the env's Python."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from portenv.model import PypiPackage, PypiSource, StagedPrefix, Subdir
from portenv.stage.wheels import FetchedWheel, install_wheels
from tests.support.pypilock import make_wheel

MAIN = "tool._cli:main"


def fetched(wheel: Path, name: str) -> FetchedWheel:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    package = PypiPackage(name, "1.0", wheel.as_uri(), "wheel", digest)
    return FetchedWheel(PypiSource(package, wheel, "file", digest), wheel, wheel.as_uri())


def install(tmp_path: Path, name: str, scripts: list[str], python: str) -> set[str]:
    wheel = make_wheel(
        tmp_path / "wheels",
        name,
        "1.0",
        files={"tool/__init__.py": "", "tool/_cli.py": "def main(): pass\n"},
        console_scripts=dict.fromkeys(scripts, MAIN),
    )
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    staged = StagedPrefix(prefix, str(prefix), Subdir("linux-64"), f"bin/python{python}")
    install_wheels([fetched(wheel, name)], staged)
    return {p.name for p in (prefix / "bin").iterdir()}


def test_pips_versioned_script_is_named_after_the_envs_python(tmp_path: Path) -> None:
    """The 3.12 ensurepip wheel declares pip3.11: a 3.12 env gets pip3.12, as pip installs it."""
    installed = install(tmp_path, "pip", ["pip", "pip3", "pip3.11"], "3.12")
    assert installed == {"pip", "pip3", "pip3.12"}
    record = next((tmp_path / "prefix").rglob("pip-1.0.dist-info/RECORD")).read_text()
    assert "bin/pip3.12," in record
    assert "pip3.11" not in record


@pytest.mark.parametrize("name", ["tool", "pipx"])
def test_other_distributions_keep_their_script_names(tmp_path: Path, name: str) -> None:
    installed = install(tmp_path, name, ["tool3.11", "pip3.11"], "3.12")
    assert installed == {"tool3.11", "pip3.11"}

"""The user's own code as requirements: local folders, files, file URLs, find-links, the project.

uv resolves these for real; every input is local (the projects have static metadata and no
dependencies), so nothing is fetched from an index.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from portenv._uv import run_uv
from portenv.errors import InputError
from portenv.model import PypiPackage
from portenv.source.requirements import (
    RequirementsInput,
    requirement_notes,
    resolve_requirements,
)
from tests.support.pypilock import make_wheel

VERSION = tuple(sys.version_info[:3])
FLIT = '[build-system]\nrequires = ["flit_core>=3.4,<5"]\nbuild-backend = "flit_core.buildapi"\n'


def folder_project(folder: Path, name: str, *, packaged: bool = True, extra: str = "") -> Path:
    """A project with static metadata (uv reads it without building) and a console script."""
    module = folder / name.replace("-", "_")
    module.mkdir(parents=True)
    (module / "__init__.py").write_text("def main():\n    print('hi')\n")
    head = FLIT if packaged else ""
    (folder / "pyproject.toml").write_text(
        f'{head}[project]\nname = "{name}"\nversion = "0.1"\ndescription = "d"\n'
        f'requires-python = ">=3.8"\ndependencies = []\n{extra}'
        f'[project.scripts]\n{name} = "{name.replace("-", "_")}:main"\n'
    )
    return folder


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_name(packages: tuple[PypiPackage, ...]) -> dict[str, PypiPackage]:
    return {p.name: p for p in packages}


@pytest.fixture
def code(tmp_path: Path) -> Path:
    """app/ with requirements.txt, lib/, dist/tool-1.0 wheel, links/linked-1.5 wheel."""
    folder_project(tmp_path / "app", "appx")
    folder_project(tmp_path / "lib", "libx")
    make_wheel(tmp_path / "dist", "tool", "1.0", files={"tool.py": ""})
    make_wheel(tmp_path / "dist", "byurl", "3.0", files={"byurl.py": ""})
    make_wheel(tmp_path / "links", "linked", "1.5", files={"linked.py": ""})
    return tmp_path


def resolve(source: RequirementsInput) -> dict[str, PypiPackage]:
    return by_name(resolve_requirements(source, VERSION, "linux-64"))


def test_every_local_form_maps_to_its_kind(code: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requirements = code / "app" / "requirements.txt"
    wheel_url = (code / "dist" / "byurl-3.0-py3-none-any.whl").as_uri()
    requirements.write_text(
        ".\n-e ../lib\n../dist/tool-1.0-py3-none-any.whl\n"
        f"byurl @ {wheel_url}\n--find-links ../links\nlinked\n"
    )
    monkeypatch.chdir(code / "dist")  # paths are the file's, not the current folder's
    found = resolve(RequirementsInput((requirements,)))
    assert {n: (p.kind, p.version, p.url, p.sha256) for n, p in found.items()} == {
        "appx": ("path", "0.1", str(code / "app"), None),
        "libx": ("editable", "0.1", str(code / "lib"), None),
        "tool": ("wheel", "1.0", str(code / "dist" / "tool-1.0-py3-none-any.whl"), None),
        "byurl": ("wheel", "3.0", str(code / "dist" / "byurl-3.0-py3-none-any.whl"), None),
        "linked": (
            "wheel",
            "1.5",
            (code / "links" / "linked-1.5-py3-none-any.whl").as_uri(),
            sha256(code / "links" / "linked-1.5-py3-none-any.whl"),
        ),
    }
    assert found["appx"].is_direct and found["tool"].is_direct and not found["linked"].is_direct


def test_with_lines_are_relative_to_the_current_folder(
    code: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(code)
    found = resolve(RequirementsInput(with_requirements=("./app", "-e lib")))
    assert {n: (p.kind, p.url) for n, p in found.items()} == {
        "appx": ("path", str(code / "app")),
        "libx": ("editable", str(code / "lib")),
    }


def test_a_hash_pin_on_a_local_wheel_is_kept_and_checked(code: Path) -> None:
    wheel = code / "dist" / "tool-1.0-py3-none-any.whl"
    requirements = code / "requirements.txt"
    requirements.write_text(f"./dist/{wheel.name} --hash=sha256:{sha256(wheel)}\n")
    assert resolve(RequirementsInput((requirements,)))["tool"].sha256 == sha256(wheel)
    requirements.write_text(f"./dist/{wheel.name} --hash=sha256:{'0' * 64}\n")
    with pytest.raises(InputError) as caught:
        resolve(RequirementsInput((requirements,)))
    assert caught.value.message == (
        f"tool 1.0: the file for the target has sha256 {sha256(wheel)}, "
        "which the requirements do not allow"
    )


def test_the_project_is_installed_unless_told_not_to(code: Path) -> None:
    project = folder_project(code / "proj", "projx")
    assert list(resolve(RequirementsInput(project=project))) == ["projx"]
    assert resolve(RequirementsInput(project=project, install_project=False)) == {}
    requirements = code / "requirements.txt"
    requirements.write_text("./dist/tool-1.0-py3-none-any.whl\n")
    both = resolve(RequirementsInput((requirements,), project))
    assert sorted(both) == ["projx", "tool"] and both["projx"].kind == "path"


def test_a_project_without_a_build_system_gives_its_dependencies_and_a_note(code: Path) -> None:
    project = folder_project(code / "virtual", "virt", packaged=False)
    source = RequirementsInput(project=project)
    assert resolve(source) == {}
    assert requirement_notes(source) == (
        f"virt ({project}) has no [build-system], so its dependencies are packed but not "
        "the project itself",
    )
    assert requirement_notes(RequirementsInput()) == (
        "no requirements given (-r, --with or --project): packing the bare interpreter",
    )
    assert resolve_requirements(RequirementsInput(), VERSION, "linux-64") == ()


def test_a_uv_locked_project_is_added_as_a_folder(code: Path) -> None:
    """uv's export leaves the project out (--no-emit-project); portenv adds its folder."""
    extra = '[tool.uv]\nno-index = true\nfind-links = ["../links"]\n'
    project = folder_project(code / "locked", "lockedx", extra=extra)
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.replace("[]", '["linked"]'))
    done = run_uv(["lock", "--offline", "--python", sys.executable], cwd=project)
    assert done.returncode == 0, done.stderr
    found = resolve(RequirementsInput(project=project))
    assert {n: (p.kind, p.url) for n, p in found.items()} == {
        "linked": ("wheel", (code / "links" / "linked-1.5-py3-none-any.whl").as_uri()),
        "lockedx": ("path", str(project)),
    }
    assert list(resolve(RequirementsInput(project=project, install_project=False))) == ["linked"]


PYLOCK = """lock-version = "1.0"
created-by = "test"

[[packages]]
name = "own"
directory = {{ path = ".", editable = true }}

[[packages]]
name = "dep"
version = "2.0"
archive = {{ path = "dist/dep-2.0-py3-none-any.whl", size = 12, hashes = {{ sha256 = "{h}" }} }}
"""


def test_a_pylock_s_own_entry_follows_no_install_project(tmp_path: Path) -> None:
    folder_project(tmp_path, "own")
    (tmp_path / "pylock.toml").write_text(PYLOCK.format(h="a" * 64))
    found = resolve(RequirementsInput(project=tmp_path))
    own, dep = found["own"], found["dep"]
    assert (own.kind, own.url, own.version) == ("editable", str(tmp_path), "0.1")
    wheel = str(tmp_path / "dist" / "dep-2.0-py3-none-any.whl")
    assert (dep.kind, dep.url, dep.sha256, dep.size) == ("wheel", wheel, "a" * 64, 12)
    assert list(resolve(RequirementsInput(project=tmp_path, install_project=False))) == ["dep"]
    lines = (tmp_path / "pylock.toml").read_text().split("\n\n")
    (tmp_path / "pylock.toml").write_text(lines[0] + "\n\n" + lines[2])
    found = resolve(RequirementsInput(project=tmp_path))
    assert (found["own"].kind, found["own"].url) == ("path", str(tmp_path)), "added when missing"


def test_a_path_source_of_a_local_project_is_found_from_the_lock_s_folder(code: Path) -> None:
    """uv writes the folder of a `[tool.uv.sources]` path relative to its scratch lock file."""
    sources = '[tool.uv.sources]\nlibx = { path = "../lib" }\n'
    user = folder_project(code / "user", "userx", extra=sources)
    text = (user / "pyproject.toml").read_text()
    (user / "pyproject.toml").write_text(text.replace("[]", '["libx"]'))
    found = resolve(RequirementsInput(with_requirements=(str(user),)))
    assert {n: (p.kind, p.url) for n, p in found.items()} == {
        "libx": ("path", str(code / "lib")),
        "userx": ("path", str(user)),
    }

"""init, add, remove, lock, install and run against a tiny channel with several versions.

The channel is built in code (tests.support.condapkg) so every case is exact and offline:
foo has versions 1.0, 1.1 and 2.0; bar needs foo <2, baz needs foo >=2 (so bar and baz
cannot both be installed); tool is a shell script that reports what it sees.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import rattler
import tomlkit

from portenv import author
from portenv.errors import LockFileError, ManifestError, ResolveError
from portenv.project.check import lock_differences
from portenv.project.lockfile import read_state
from tests.support.condapkg import PackageFile, make_conda_package

TOOL = b"""#!/bin/sh
echo "tool $* in $CONDA_PREFIX foo_home=$FOO_HOME active=$FOO_ACTIVE env=$PIXI_ENVIRONMENT_NAME"
exit "${TOOL_EXIT:-0}"
"""


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """foo 1.0/1.1/2.0, bar (foo <2), baz (foo >=2), qux, tool (with activation files)."""
    root = tmp_path_factory.mktemp("authorchannel") / "channel"
    for version in ("1.0", "1.1", "2.0"):
        make_conda_package(root, "foo", [PackageFile(f"share/foo-{version}", b"")], version=version)
    make_conda_package(root, "bar", [PackageFile("share/bar", b"")], depends=("foo <2",))
    make_conda_package(root, "baz", [PackageFile("share/baz", b"")], depends=("foo >=2",))
    make_conda_package(root, "qux", [PackageFile("share/qux", b"")])
    tool_files = [
        PackageFile("bin/tool", TOOL, executable=True),
        PackageFile("etc/conda/env_vars.d/tool.json", json.dumps({"FOO_HOME": "h"}).encode()),
        PackageFile("etc/conda/activate.d/tool.sh", b"export FOO_ACTIVE=yes\n"),
    ]
    make_conda_package(root, "tool", tool_files)
    (root / "noarch").mkdir()
    asyncio.run(rattler.index.index_fs(root, write_zst=False, write_shards=False))
    return root


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def project(tmp_path: Path, channel: Path) -> Path:
    """A fresh workspace on the test channel, for linux-64."""
    folder = tmp_path / "ws"
    author.init(author.InitRequest(folder, channels=(channel.as_uri(),), platforms=("linux-64",)))
    return folder


def add(project: Path, cache: Path, *specs: str, **options: object) -> author.AddResult:
    return author.add(author.AddRequest(project, specs, cache=cache, **options))  # type: ignore[arg-type]


def manifest(project: Path) -> dict[str, object]:
    data: dict[str, object] = tomlkit.parse((project / "pixi.toml").read_text()).unwrap()
    return data


def locked(project: Path, env: str = "default") -> dict[str, str]:
    """name -> version of the linux-64 packages of an environment."""
    content = read_state(project / "pixi.lock").environments[env]
    return {p.name: p.version for p in content.conda.get("linux-64", ())}


def snapshot(project: Path) -> Callable[[], None]:
    """Assert later that manifest and lock are byte-identical to now."""
    files = {p: p.read_bytes() for p in (project / "pixi.toml", project / "pixi.lock")}

    def unchanged() -> None:
        for path, data in files.items():
            assert path.read_bytes() == data, f"{path.name} changed"

    return unchanged


# --- init --------------------------------------------------------------------------------


def test_init_writes_what_pixi_init_writes(project: Path, channel: Path) -> None:
    assert (project / "pixi.toml").read_text() == (
        "[workspace]\n"
        f'channels = ["{channel.as_uri()}"]\n'
        'name = "ws"\n'
        'platforms = ["linux-64"]\n'
        'version = "0.1.0"\n\n[tasks]\n\n[dependencies]\n'
    )
    assert ".pixi/*" in (project / ".gitignore").read_text()
    assert "pixi.lock merge=binary" in (project / ".gitattributes").read_text()
    with pytest.raises(ManifestError, match="already exists"):
        author.init(author.InitRequest(project))


def test_init_pyproject_keeps_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mine"  # keep\n')
    (tmp_path / ".gitignore").write_text("dist/\n")
    result = author.init(author.InitRequest(tmp_path, platforms=("linux-64",), pyproject=True))
    text = result.manifest.read_text()
    assert text.startswith('[project]\nname = "mine"  # keep\n')
    assert tomlkit.parse(text).unwrap()["tool"]["pixi"]["workspace"] == {
        "channels": ["conda-forge"],
        "platforms": ["linux-64"],
    }
    assert (tmp_path / ".gitignore").read_text().startswith("dist/\n# pixi environments\n")
    with pytest.raises(ManifestError, match=r"\[tool.pixi\]"):
        author.init(author.InitRequest(tmp_path, pyproject=True))


# --- add / remove / lock ------------------------------------------------------------------


def test_add_pins_a_bare_name_like_pixi(project: Path, cache: Path) -> None:
    result = add(project, cache, "foo", "qux=1.0")
    assert result.added == ('foo = ">=2.0,<3"', 'qux = "1.0.*"')
    assert manifest(project)["dependencies"] == {"foo": ">=2.0,<3", "qux": "1.0.*"}
    assert locked(project) == {"foo": "2.0", "qux": "1.0"}
    assert lock_differences(project) == ()


def test_existing_pins_are_kept_while_still_valid(project: Path, cache: Path) -> None:
    add(project, cache, "foo==1.0")
    text = (project / "pixi.toml").read_text().replace('foo = "==1.0"', 'foo = "*"')
    (project / "pixi.toml").write_text(text)
    unchanged = snapshot(project)
    assert not author.lock(author.LockRequest(project, cache=cache)).changed
    unchanged()  # foo 1.0 still satisfies "foo *": a re-saved lock is the same file
    add(project, cache, "qux")
    assert locked(project) == {"foo": "1.0", "qux": "1.0"}  # not bumped to 2.0


def test_an_unsolvable_add_changes_nothing(project: Path, cache: Path) -> None:
    add(project, cache, "bar")
    unchanged = snapshot(project)
    with pytest.raises(ResolveError) as caught:
        add(project, cache, "baz")
    message = str(caught.value)
    assert message.splitlines()[0].startswith("cannot solve")
    assert "foo" in message and caught.value.hint
    unchanged()


def test_remove_drops_the_packages_only_it_needed(project: Path, cache: Path) -> None:
    add(project, cache, "bar", "qux")
    assert locked(project) == {"bar": "1.0", "foo": "1.1", "qux": "1.0"}
    author.remove(author.RemoveRequest(project, ("bar",), cache=cache))
    assert manifest(project)["dependencies"] == {"qux": ">=1.0,<2"}
    assert locked(project) == {"qux": "1.0"}


def test_removing_an_unknown_name_is_refused(project: Path, cache: Path) -> None:
    add(project, cache, "qux")
    unchanged = snapshot(project)
    with pytest.raises(ManifestError, match="nope is not a dependency of the default feature"):
        author.remove(author.RemoveRequest(project, ("nope",), cache=cache))
    unchanged()


def test_a_platform_outside_the_workspace_is_refused(project: Path, cache: Path) -> None:
    with pytest.raises(ManifestError, match="osx-arm64 is not a platform of the workspace"):
        add(project, cache, "qux", platforms=("osx-arm64",))
    assert not (project / "pixi.lock").exists()


def test_lock_check_says_what_differs(project: Path, cache: Path) -> None:
    add(project, cache, "qux")
    with (project / "pixi.toml").open("a") as handle:
        handle.write('foo = "<2"\n')
    unchanged = snapshot(project)
    with pytest.raises(LockFileError) as caught:
        author.lock(author.LockRequest(project, check=True, cache=cache))
    assert "  - default [linux-64]: foo <2 is not in the lock" in str(caught.value)
    unchanged()
    assert author.lock(author.LockRequest(project, cache=cache)).changed
    assert author.lock(author.LockRequest(project, check=True, cache=cache)).differences == ()


def test_features_targets_and_solve_groups(project: Path, cache: Path) -> None:
    add(project, cache, "bar")
    add(project, cache, "qux", feature="extra", platforms=("linux-64",))
    with (project / "pixi.toml").open("a") as handle:
        handle.write(
            '\n[environments]\ndefault = { solve-group = "g" }\n'
            'extra = { features = ["extra"], solve-group = "g" }\n'
            'alone = { features = ["extra"], no-default-feature = true }\n'
        )
    author.lock(author.LockRequest(project, cache=cache))
    data = manifest(project)
    assert data["feature"] == {"extra": {"target": {"linux-64": {"dependencies": {"qux": "*"}}}}}
    assert locked(project, "default") == {"bar": "1.0", "foo": "1.1"}
    assert locked(project, "extra") == {"bar": "1.0", "foo": "1.1", "qux": "1.0"}
    assert locked(project, "alone") == {"qux": "1.0"}


def test_a_channel_inside_the_project_moves_with_it(
    tmp_path: Path, channel: Path, cache: Path
) -> None:
    folder = tmp_path / "bundle"
    folder.mkdir()
    shutil.copytree(channel, folder / "channel")
    author.init(author.InitRequest(folder, channels=("./channel",), platforms=("linux-64",)))
    add(folder, cache, "bar")
    text = (folder / "pixi.lock").read_text()
    assert "- url: ./channel" in text and "- conda: ./channel/linux-64/bar-1.0-0.tar.bz2" in text
    assert str(tmp_path) not in text
    moved = tmp_path / "somewhere else"
    folder.rename(moved)
    assert lock_differences(moved) == ()
    result = author.install(author.InstallRequest(moved, cache=cache))
    assert (result.prefix / "share" / "bar").is_file()


def test_pypi_dependencies_without_python_are_refused(project: Path, cache: Path) -> None:
    with (project / "pixi.toml").open("a") as handle:
        handle.write('\n[pypi-dependencies]\nidna = "*"\n')
    with pytest.raises(ResolveError, match="need python") as caught:
        author.lock(author.LockRequest(project, cache=cache))
    assert "python" in str(caught.value.hint)
    assert not (project / "pixi.lock").exists()


# --- install / run ------------------------------------------------------------------------


def test_install_creates_the_env_once_and_reuses_the_cache(project: Path, cache: Path) -> None:
    add(project, cache, "tool", "qux")
    first = author.install(author.InstallRequest(project, cache=cache))
    assert first.installed and first.prefix == project / ".pixi" / "envs" / "default"
    assert (first.prefix / "bin" / "tool").is_file()
    assert (first.prefix / "conda-meta").is_dir()
    assert any((cache / "conda").rglob("tool-1.0-0.tar.bz2"))
    assert not author.install(author.InstallRequest(project, cache=cache)).installed
    author.remove(author.RemoveRequest(project, ("qux",), cache=cache))
    again = author.install(author.InstallRequest(project, cache=cache))
    assert again.installed and not (again.prefix / "share" / "qux").exists()


def test_run_activates_the_env_and_passes_the_exit_code(
    project: Path, cache: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    add(project, cache, "tool")
    with (project / "pixi.toml").open("a") as handle:
        handle.write('\n[activation.env]\nTOOL_EXIT = "5"\n')
    text = (project / "pixi.toml").read_text().replace("[tasks]\n", '[tasks]\nhi = "tool --hi"\n')
    (project / "pixi.toml").write_text(text)
    result = author.run(author.RunRequest(project, ("tool", "a b"), cache=cache))
    assert result.returncode == 5
    prefix = project / ".pixi" / "envs" / "default"
    assert capfd.readouterr().out == (f"tool a b in {prefix} foo_home=h active=yes env=default\n")
    assert author.run(author.RunRequest(project, ("hi", "x"), cache=cache)).returncode == 5
    assert capfd.readouterr().out.startswith("tool --hi x in ")


def test_run_refuses_an_empty_or_missing_command(project: Path, cache: Path) -> None:
    add(project, cache, "qux")
    with pytest.raises(Exception, match="no command"):
        author.run(author.RunRequest(project, (), cache=cache))
    with pytest.raises(Exception, match="cannot run no-such-program"):
        author.run(author.RunRequest(project, ("no-such-program",), cache=cache))

"""The local test channel holds what the rest of the suite relies on.

Building the channel uncached takes ~15-25 s (once per cache key); afterwards every call
is a cache hit. The install test runs the relocated python from a moved prefix, so a
python package that still leans on its build location fails here, not deep in e2e.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest
import rattler

from tests.support import channel as test_channel

EXPECTED = {
    "linux-64": {"python", "greet", "libfoo", "libbar"},
    "noarch": {"hello-py"},
}
PLACEHOLDER_LENGTH = 255  # conda-build and rattler-build pad binary prefixes to this


@pytest.fixture(scope="module")
def local_channel() -> Path:
    """The cached channel (built on first use)."""
    return test_channel.build_local_channel()


def _archive(channel: Path, subdir: str, name: str) -> Path:
    """The one package file of ``name`` in ``subdir``."""
    found = sorted((channel / subdir).glob(f"{name}-*.conda"))
    assert len(found) == 1, f"expected one {name} package in {subdir}, got {found}"
    return found[0]


def _paths(channel: Path, subdir: str, name: str) -> dict[str, rattler.PathsEntry]:
    """info/paths.json of a package, keyed by relative path."""
    paths = rattler.PathsJson.from_package_archive(_archive(channel, subdir, name))
    return {str(entry.relative_path): entry for entry in paths.paths}


@pytest.mark.parametrize("subdir", sorted(EXPECTED))
def test_channel_is_indexed_with_expected_packages(local_channel: Path, subdir: str) -> None:
    repodata = json.loads((local_channel / subdir / "repodata.json").read_text())
    records = {**repodata.get("packages", {}), **repodata.get("packages.conda", {})}
    assert {record["name"] for record in records.values()} == EXPECTED[subdir]
    assert all(record["subdir"] == subdir for record in records.values())


def test_greet_records_binary_and_text_prefixes(local_channel: Path) -> None:
    paths = _paths(local_channel, "linux-64", "greet")
    binary = paths["bin/greet"].prefix_placeholder
    assert binary is not None and binary.file_mode.binary
    assert len(binary.placeholder) == PLACEHOLDER_LENGTH
    text = paths["etc/greet.conf"].prefix_placeholder
    assert text is not None and text.file_mode.text
    assert paths["share/greet/message.txt"].prefix_placeholder is None


def test_python_package_is_self_contained(local_channel: Path) -> None:
    paths = _paths(local_channel, "linux-64", "python")
    for link in ("bin/python", "bin/python3"):
        assert paths[link].path_type.softlink, link
    assert paths["bin/python3.12"].path_type.hardlink
    for lib in ("libpython3.12.so.1.0", "libssl.so.3", "libcrypto.so.3", "libffi.so.8"):
        assert f"lib/{lib}" in paths, lib
    assert "lib/python3.12/site-packages/README.txt" in paths
    assert not any(p.startswith("lib/python3.12/test/") for p in paths)
    binary_prefixed = [
        p
        for p, e in paths.items()
        if e.prefix_placeholder and e.prefix_placeholder.file_mode.binary
    ]
    assert binary_prefixed == [], "the relocatable python must not need binary patching"


def test_libbar_depends_on_libfoo(local_channel: Path) -> None:
    index = rattler.IndexJson.from_package_archive(_archive(local_channel, "linux-64", "libbar"))
    assert index.depends == ["libfoo"]


def test_hello_py_is_noarch_python(local_channel: Path) -> None:
    index = rattler.IndexJson.from_package_archive(_archive(local_channel, "noarch", "hello-py"))
    assert index.noarch.python
    assert index.depends == ["python"]
    assert "site-packages/hello_py/__init__.py" in _paths(local_channel, "noarch", "hello-py")


def test_build_reuses_the_cache(local_channel: Path) -> None:
    assert test_channel.build_local_channel() == local_channel
    assert local_channel.name.startswith("channel-")
    assert not Path(test_channel.__file__).parent.joinpath("recipes", "greet", "output").exists()


def _locked_names(lock_path: Path, environment: str, platform: str) -> set[str]:
    """Package names locked for one environment and platform."""
    env = rattler.LockFile.from_path(lock_path).environment(environment)
    assert env is not None, environment
    locked = {p.name: p for p in env.platforms()}
    records = env.conda_repodata_records_for_platform(locked[platform])
    assert records is not None
    return {record.name.normalized for record in records}


def test_write_project_locks_against_the_channel(local_channel: Path, tmp_path: Path) -> None:
    project = test_channel.write_project(
        tmp_path / "demo",
        local_channel,
        ["python 3.12.*", "greet", "libbar"],
        environments={"tools": ["hello-py"]},
    )
    lock = project / "pixi.lock"
    assert _locked_names(lock, "default", "linux-64") == {"python", "greet", "libbar", "libfoo"}
    assert _locked_names(lock, "tools", "linux-64") == {"hello-py", "python"}
    tomllib = pytest.importorskip("tomllib")  # 3.11+: the suite's own venv has it
    manifest = tomllib.loads((project / "pixi.toml").read_text())
    assert manifest["workspace"]["channels"] == [local_channel.as_uri()]
    assert manifest["workspace"]["platforms"] == ["linux-64"]
    assert manifest["dependencies"] == {"python": "3.12.*", "greet": "*", "libbar": "*"}
    assert manifest["feature"]["tools"]["dependencies"] == {"hello-py": "*"}


def test_write_project_fails_on_unknown_package(local_channel: Path, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no-such-package"):
        test_channel.write_project(tmp_path / "bad", local_channel, ["no-such-package"])


def _run(argv: list[str | Path]) -> str:
    """Run a program from the installed environment with a clean library path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LD_", "PYTHON"))}
    proc = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _is_glibc(path: str) -> bool:
    """glibc's own libraries are the only ones the environment may take from the host."""
    return Path(path).name.split(".so")[0] in {"libc", "libm", "ld-linux-x86-64"}


def test_installed_environment_runs_after_moving(local_channel: Path, tmp_path: Path) -> None:
    records = test_channel.solve(local_channel, ["python", "libbar", "hello-py"], "linux-64")
    first = tmp_path / "first"
    asyncio.run(
        rattler.install(
            records, target_prefix=first, cache_dir=tmp_path / "pkgs", show_progress=False
        )
    )
    assert _run([first / "bin" / "hello-py"]).strip() == f"hello-py {first}"
    moved = tmp_path / "moved here" / "env"
    moved.parent.mkdir()
    first.rename(moved)
    code = (
        "import ssl, sqlite3, ctypes, json, lzma, bz2, zlib, sys\n"
        "maps = open('/proc/self/maps').read().splitlines()\n"
        "libs = sorted({l.split(None, 5)[-1] for l in maps if '.so' in l})\n"
        "print(json.dumps([sys.prefix, libs]))"
    )
    prefix, libs = json.loads(_run([moved / "bin" / "python3.12", "-c", code]))
    assert prefix == str(moved)
    foreign = [lib for lib in libs if not lib.startswith(f"{moved}/") and not _is_glibc(lib)]
    assert foreign == [], "libraries loaded from outside the environment"
    assert str(moved / "lib" / "libssl.so.3") in libs
    assert str(moved / "lib" / "libpython3.12.so.1.0") in libs
    assert _run([moved / "bin" / "barcli"]).strip() == "bar=43"

"""portenv's own wheel and sdist (backend/portenv_backend.py): a wheel carries portenv-unzstd
for every arch, built from the sdist's scripts when missing, or the build stops in one line;
an editable install needs none of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNZSTD = ROOT / "src" / "portenv" / "target" / "unzstd"
ARCHES = ("x86_64", "aarch64")
COPIED = ("pyproject.toml", "MANIFEST.in", "README.md", "LICENSE", "backend", "scripts", "src")
HOOK = """
import importlib, sys, tomlkit
with open("pyproject.toml", encoding="utf-8") as f:
    system = tomlkit.load(f)["build-system"]
sys.path[:0] = system.get("backend-path", [])
backend = importlib.import_module(system["build-backend"])
print(getattr(backend, sys.argv[1])(sys.argv[2]))
"""
"""A PEP 517 frontend in short: the backend pyproject.toml names, one hook, in the tree."""


def source_tree(into: Path, *, unzstd: bool = True) -> Path:
    """What a git checkout of portenv holds (with or without the built decompressors)."""
    into.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", *([] if unzstd else ["unzstd"]))
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=skip, symlinks=True)
        else:
            shutil.copy2(source, into / name)
    return into


def hook(tree: Path, name: str, out: Path) -> subprocess.CompletedProcess[str]:
    """Run a PEP 517 hook of the tree's backend in the tree, as build frontends do."""
    _check_setuptools()
    return subprocess.run(
        [sys.executable, "-c", HOOK, name, str(out)],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _check_setuptools() -> None:
    """pyproject.toml's licence fields (PEP 639) need setuptools 77, which the tests' extra
    installs; the hooks run with this interpreter's."""
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 77:
        found = setuptools.__version__
        pytest.fail(f"setuptools {found} < 77 is installed: run sh scripts/bootstrap.sh --tests")


def wheel_members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist() if "/unzstd/" in name}


def test_a_wheel_carries_the_decompressor_for_each_arch(tmp_path: Path) -> None:
    for arch in ARCHES:
        assert (UNZSTD / arch / "portenv-unzstd").is_file(), "run: sh scripts/build-unzstd.sh"
    built = hook(source_tree(tmp_path / "tree"), "build_wheel", tmp_path / "dist")
    assert built.returncode == 0, built.stderr
    found = wheel_members(tmp_path / "dist" / built.stdout.split()[-1])
    for arch in ARCHES:
        name = f"portenv/target/unzstd/{arch}/portenv-unzstd"
        assert found[name] == (UNZSTD / arch / "portenv-unzstd").read_bytes()
    assert "BSD" in found["portenv/target/unzstd/LICENSE-zstd"].decode()


def test_a_wheel_from_an_sdist_builds_the_decompressor_it_lacks(tmp_path: Path) -> None:
    """The sdist holds the script and its inputs: a wheel built from it without the binaries
    runs scripts/build-unzstd.sh (zstd's source is cached by the set-up's own run)."""
    sdist = hook(source_tree(tmp_path / "tree"), "build_sdist", tmp_path / "dist")
    assert sdist.returncode == 0, sdist.stderr
    with tarfile.open(tmp_path / "dist" / sdist.stdout.split()[-1]) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    (tree,) = (tmp_path / "unpacked").iterdir()
    for needed in ("build-unzstd.sh", "install-system-deps.sh", "unzstd/unzstd.c"):
        assert (tree / "scripts" / needed).is_file(), needed
    assert (tree / "backend" / "portenv_backend.py").is_file()
    shutil.rmtree(tree / "src" / "portenv" / "target" / "unzstd")
    built = hook(tree, "build_wheel", tmp_path / "wheels")
    assert built.returncode == 0, built.stderr
    found = wheel_members(tmp_path / "wheels" / built.stdout.split()[-1])
    for arch in ARCHES:
        name = f"portenv/target/unzstd/{arch}/portenv-unzstd"
        assert found[name] == (UNZSTD / arch / "portenv-unzstd").read_bytes(), arch


def test_no_way_to_build_the_decompressor_stops_the_wheel_in_one_line(tmp_path: Path) -> None:
    tree = source_tree(tmp_path / "tree", unzstd=False)
    (tree / "scripts" / "build-unzstd.sh").write_text(
        "echo 'error: aarch64-linux-gnu-gcc is missing' >&2\nexit 1\n"
    )
    built = hook(tree, "build_wheel", tmp_path / "dist")
    assert built.returncode == 1
    said, last = built.stderr.splitlines()[-2:]
    assert said == "error: aarch64-linux-gnu-gcc is missing", "the script's own message shows"
    assert last.startswith("error: a portenv wheel needs src/portenv/target/unzstd/ (missing: ")
    assert "sh scripts/install-system-deps.sh --tests" in last
    assert not list(tmp_path.glob("dist/*.whl"))


def test_an_editable_install_needs_no_decompressor(tmp_path: Path) -> None:
    """scripts/bootstrap.sh installs portenv editable first and builds portenv-unzstd after."""
    tree = source_tree(tmp_path / "tree", unzstd=False)
    (tree / "scripts" / "build-unzstd.sh").write_text("exit 1\n")
    built = hook(tree, "build_editable", tmp_path / "dist")
    assert built.returncode == 0, built.stderr
    assert built.stdout.split()[-1].endswith(".whl")


def test_a_tree_without_the_script_names_where_to_build_from(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "backend"))
    try:
        import portenv_backend
    finally:
        sys.path.remove(str(ROOT / "backend"))
    with pytest.raises(SystemExit) as stopped:
        portenv_backend.ensure_unzstd(tmp_path)
    assert str(stopped.value).startswith("error: this source tree has neither ")
    assert "git checkout of portenv or its sdist" in str(stopped.value)

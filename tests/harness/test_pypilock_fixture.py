"""The PyPI half of test projects is locked for the target, the way pixi locks it.

Needs PyPI (reachable from development machines and CI): each project resolves in
~1.5 s, the sdist build fetches flit_core once. The test process may run another Python
than the target's 3.12; charset-normalizer (a compiled wheel) shows which one was used.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest
import rattler
import tomlkit
import yaml
from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile
from packaging.utils import canonicalize_name, parse_wheel_filename

from tests.support import pypilock
from tests.support.channel import build_local_channel

pytestmark = pytest.mark.network  # it locks real projects against the real index

#: What requests + httpx pull in, robust to new releases (sniffio left anyio 4.12).
CLOSURE = {
    "requests",
    "httpx",
    "idna",
    "certifi",
    "urllib3",
    "charset-normalizer",
    "h11",
    "httpcore",
    "anyio",
}
FIELD_ORDER = ["pypi", "name", "version", "sha256", "requires_dist", "requires_python"]
HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture(scope="module")
def local_channel() -> Path:
    """The cached channel (built on first use)."""
    return build_local_channel()


@pytest.fixture(scope="module")
def web_project(local_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """python 3.12 from the channel, requests + httpx from PyPI."""
    project = tmp_path_factory.mktemp("pypi") / "web"
    return pypilock.write_pypi_project(
        project, local_channel, ["python 3.12.*"], ["requests", "httpx"]
    )


@pytest.fixture(scope="module")
def local_dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A wheel with a console script and an sdist with one, outside any project."""
    folder = tmp_path_factory.mktemp("dists")
    wheel = pypilock.make_wheel(
        folder,
        "hello-wheel",
        "1.2",
        files={"hello_wheel/__init__.py": "def main() -> None:\n    print('wheel says hi')\n"},
        console_scripts={"hello-wheel": "hello_wheel:main"},
        requires_dist=["idna>=3"],
        requires_python=">=3.9",
    )
    sdist = pypilock.make_sdist(
        folder,
        "hello-sdist",
        "0.3",
        module_source="def main() -> None:\n    print('sdist says hi')\n",
        console_script="hello-sdist",
    )
    return wheel, sdist


def pypi_packages(project: Path) -> dict[str, rattler.PypiLockedPackage]:
    """linux-64 PyPI packages of the default environment, read by rattler."""
    env = rattler.LockFile.from_path(project / "pixi.lock").default_environment()
    assert env is not None
    found = env.pypi_packages()["linux-64"]
    return {str(canonicalize_name(p.name)): p for p in found}


def raw_lock(project: Path) -> dict[str, Any]:
    """pixi.lock as plain YAML."""
    loaded: dict[str, Any] = yaml.safe_load((project / "pixi.lock").read_text())
    return loaded


def raw_pypi_entries(project: Path) -> dict[str, dict[str, Any]]:
    """Top-level ``- pypi:`` entries by name, as written."""
    return {e["name"]: e for e in raw_lock(project)["packages"] if "pypi" in e}


# --- pure helpers --------------------------------------------------------------------------


def test_platform_tags_follow_the_target_glibc_and_arch() -> None:
    tags = pypilock.pip_platform_tags("linux-64")
    assert tags[0] == "manylinux_2_28_x86_64"  # the modelled target has glibc 2.28
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert "manylinux_2_29_x86_64" not in tags
    assert all(tag.endswith("_aarch64") for tag in pypilock.pip_platform_tags("linux-aarch64"))
    with pytest.raises(ValueError, match="only linux"):
        pypilock.pip_platform_tags("osx-arm64")


def test_requirements_become_pixi_tables() -> None:
    lines = pypilock.pypi_dependency_lines(
        ["requests>=2", "httpx[http2]>=0.27", "rich", "pkg @ https://example.invalid/pkg.whl"],
        [pypilock.PypiDist("Local_Pkg", "1.0", "./local_pkg-1.0-py3-none-any.whl", "0" * 64)],
    )
    assert lines == [
        "[pypi-dependencies]",
        'requests = ">=2"',
        'httpx = { version = ">=0.27", extras = ["http2"] }',
        'rich = "*"',
        'pkg = { url = "https://example.invalid/pkg.whl" }',
        'Local_Pkg = { path = "./local_pkg-1.0-py3-none-any.whl" }',
    ]
    with pytest.raises(ValueError, match="markers"):
        pypilock.pypi_dependency_lines(['tomli; python_version < "3.11"'], [])


# --- a project resolved from PyPI ------------------------------------------------------------


def test_lock_holds_the_closure_with_hashes_rattler_reads_back(web_project: Path) -> None:
    packages = pypi_packages(web_project)
    assert set(packages) >= CLOSURE
    for name, package in packages.items():
        sha256 = pypilock.locked_sha256(package)
        assert sha256 is not None and HEX64.fullmatch(sha256), name
        assert package.location.startswith("https://"), package.location
        assert package.location.endswith(".whl"), package.location
        assert package.version


def test_compiled_wheels_are_chosen_for_the_target_python(web_project: Path) -> None:
    location = pypi_packages(web_project)["charset-normalizer"].location
    _, _, _, tags = parse_wheel_filename(location.rsplit("/", 1)[1])
    assert any(
        tag.interpreter == "cp312"
        and tag.abi == "cp312"
        and tag.platform.startswith("manylinux")
        and tag.platform.endswith("_x86_64")
        for tag in tags
    ), f"not a cp312 manylinux x86_64 wheel: {location}"


def test_pypi_entries_have_pixis_fields_in_pixis_order(web_project: Path) -> None:
    entries = raw_pypi_entries(web_project)
    for name, entry in entries.items():
        assert list(entry) == [f for f in FIELD_ORDER if f in entry], name
        assert {"pypi", "name", "version", "sha256", "requires_python"} <= set(entry), name
    requests = entries["requests"]
    assert any(dep.startswith("urllib3") for dep in requests["requires_dist"])
    assert requests["requires_python"].startswith(">=")
    indexes = raw_lock(web_project)["environments"]["default"]["indexes"]
    assert len(indexes) == 1 and indexes[0].startswith("https://")


def test_rattler_reads_requires_dist_and_requires_python(web_project: Path) -> None:
    requests = pypi_packages(web_project)["requests"]
    assert any(dep.startswith("charset-normalizer") for dep in requests.requires_dist)
    assert requests.requires_python is not None


def test_pixi_toml_declares_the_pypi_dependencies(web_project: Path) -> None:
    manifest = tomlkit.parse((web_project / "pixi.toml").read_text()).unwrap()
    assert manifest["pypi-dependencies"] == {"requests": "*", "httpx": "*"}
    assert manifest["dependencies"] == {"python": "3.12.*"}


def test_a_locked_hash_is_the_hash_of_the_file_at_its_url(web_project: Path) -> None:
    h11 = pypi_packages(web_project)["h11"]  # ~40 kB
    with urllib.request.urlopen(h11.location, timeout=60) as response:
        data = response.read()
    assert hashlib.sha256(data).hexdigest() == pypilock.locked_sha256(h11)


def test_markers_are_evaluated_for_the_target_python() -> None:
    # pip evaluates markers with the interpreter it runs on: a 3.11 host would keep tomli
    dists = pypilock.resolve_pypi(
        ["idna", "tomli; python_version < '3.12'"], python_version="3.12", platform="linux-64"
    )
    assert {d.key for d in dists} == {"idna"}


# --- local files and missing hashes ------------------------------------------------------------


def test_local_wheel_and_sdist_are_relative_paths_with_hashes(
    local_channel: Path, local_dists: tuple[Path, Path], tmp_path: Path
) -> None:
    wheel, sdist = local_dists
    project = pypilock.write_pypi_project(
        tmp_path / "local",
        local_channel,
        ["python 3.12.*"],
        [],
        local_wheels=[wheel],
        local_sdists=[sdist],
    )
    packages = pypi_packages(project)
    assert set(packages) == {"hello-wheel", "hello-sdist"}
    for source in (wheel, sdist):
        package = packages[str(canonicalize_name(pypilock.dist_metadata(source)["Name"]))]
        assert package.location == f"./{source.name}"
        copied = project / source.name
        assert copied.is_file()
        assert pypilock.locked_sha256(package) == hashlib.sha256(copied.read_bytes()).hexdigest()
    assert packages["hello-wheel"].requires_dist == ["idna>=3"]
    assert packages["hello-sdist"].version == "0.3"
    manifest = tomlkit.parse((project / "pixi.toml").read_text()).unwrap()
    assert manifest["pypi-dependencies"]["hello-wheel"] == {"path": f"./{wheel.name}"}


def test_without_hashes_no_entry_has_a_sha256(local_channel: Path, tmp_path: Path) -> None:
    project = pypilock.write_pypi_project(
        tmp_path / "nohash", local_channel, ["python 3.12.*"], ["idna"], with_hashes=False
    )
    assert all("sha256" not in entry for entry in raw_pypi_entries(project).values())
    packages = pypi_packages(project)
    assert "idna" in packages
    assert all(pypilock.locked_sha256(p) is None for p in packages.values())


def test_pypi_dependencies_need_a_python(local_channel: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="python"):
        pypilock.write_pypi_project(tmp_path / "nopy", local_channel, ["greet"], ["idna"])


# --- tiny distributions ------------------------------------------------------------------------


def install_wheel(wheel: Path, root: Path) -> dict[str, Path]:
    """Install with `installer` (RECORD verified first) into a scheme under ``root``."""
    scheme = {name: root / name for name in ("purelib", "platlib", "headers", "scripts", "data")}
    destination = SchemeDictionaryDestination(
        {name: str(path) for name, path in scheme.items()},
        interpreter=sys.executable,
        script_kind="posix",
    )
    with WheelFile.open(wheel) as source:
        source.validate_record()
        install(source, destination, additional_metadata={})
    return scheme


def run_script(scheme: dict[str, Path], command: str) -> str:
    """Run an installed console script with its library dir on the path."""
    env = {**os.environ, "PYTHONPATH": f"{scheme['purelib']}{os.pathsep}{scheme['platlib']}"}
    done = subprocess.run(
        [str(scheme["scripts"] / command)], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout


def test_make_wheel_installs_and_its_script_runs(
    local_dists: tuple[Path, Path], tmp_path: Path
) -> None:
    wheel, _ = local_dists
    assert wheel.name == "hello_wheel-1.2-py3-none-any.whl"
    scheme = install_wheel(wheel, tmp_path)
    assert (scheme["purelib"] / "hello_wheel" / "__init__.py").is_file()
    assert run_script(scheme, "hello-wheel") == "wheel says hi\n"


def test_make_wheel_writes_any_tag(tmp_path: Path) -> None:
    tag = "cp39-cp39-manylinux2014_aarch64"
    wheel = pypilock.make_wheel(tmp_path, "native", "0.1", tag=tag, files={"native.py": "X = 1\n"})
    assert wheel.name == f"native-0.1-{tag}.whl"
    _, _, _, tags = parse_wheel_filename(wheel.name)
    assert {str(t) for t in tags} == {tag}
    with zipfile.ZipFile(wheel) as archive:
        wheel_file = archive.read("native-0.1.dist-info/WHEEL").decode()
    assert f"Tag: {tag}\n" in wheel_file
    assert "Root-Is-Purelib: false\n" in wheel_file
    scheme = install_wheel(wheel, tmp_path / "root")  # installer does not check tags
    assert (scheme["platlib"] / "native.py").is_file()


def test_make_sdist_builds_with_its_backend_and_runs(
    local_dists: tuple[Path, Path], tmp_path: Path
) -> None:
    _, sdist = local_dists
    assert sdist.name == "hello_sdist-0.3.tar.gz"
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    assert {"hello_sdist-0.3/pyproject.toml", "hello_sdist-0.3/PKG-INFO"} <= names
    out = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    build = [*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(sdist)]
    subprocess.run(build, check=True, capture_output=True)
    (wheel,) = out.glob("hello_sdist-0.3-*.whl")
    scheme = install_wheel(wheel, tmp_path / "root")
    assert run_script(scheme, "hello-sdist") == "sdist says hi\n"


def test_requires_python_is_compared_as_a_specifier_set() -> None:
    """rattler may write `>=3.11, !=3.14.1` back as `!=3.14.1,>=3.11`: the same constraint."""
    from tests.support.pypilock import _specifier

    assert _specifier("!=3.14.1,>=3.11") == _specifier(">=3.11, !=3.14.1")
    assert _specifier(">=3.11") != _specifier(">=3.12")
    assert _specifier(None) is None

"""The PyPI half without the network: targets, wheel ranking, marker walks, uv's input."""

from __future__ import annotations

from dataclasses import replace

import pytest
import tomlkit

from portenv._rattler import LockedEnvironmentContent, LockedPlatform
from portenv._uv import python_platform
from portenv.author.pypi import PypiDist, _choose, _preferences_file
from portenv.errors import ResolveError
from portenv.model import CondaPackage
from portenv.project.check import differences
from portenv.project.closure import (
    conda_pypi_names,
    conda_reach,
    marker_environment,
    pypi_reach,
    spec_name,
)
from portenv.project.environments import EnvironmentSpec, Platform, virtual_packages
from portenv.project.lockfile import LockState
from portenv.project.specs import PypiRequirement
from portenv.project.targets import PypiTarget, ordered_tags


def target(subdir: str, python: str = "3.12.1", **requirements: str) -> PypiTarget:
    return PypiTarget(Platform(subdir, subdir, virtual_packages(subdir, requirements)), python)


def uv_platform(target: PypiTarget) -> str:
    """What the lock's resolver passes uv for a target."""
    return python_platform(target.platform.subdir, target.virtual("__glibc"))


@pytest.mark.parametrize(
    ("subdir", "requirements", "expected"),
    [
        pytest.param("linux-64", {}, "x86_64-manylinux_2_28", id="linux"),
        pytest.param("linux-aarch64", {"libc": "2.17"}, "aarch64-manylinux_2_17", id="arm"),
        pytest.param("osx-arm64", {}, "aarch64-apple-darwin", id="osx"),
        pytest.param("win-64", {}, "x86_64-pc-windows-msvc", id="win"),
    ],
)
def test_uv_platform_follows_the_virtual_packages(
    subdir: str, requirements: dict[str, str], expected: str
) -> None:
    assert uv_platform(target(subdir, **requirements)) == expected


def test_an_unknown_platform_is_refused() -> None:
    with pytest.raises(ResolveError, match="linux-s390x"):
        uv_platform(target("linux-s390x"))


def test_tags_stop_at_the_targets_glibc_and_prefer_the_cpython_abi() -> None:
    tags = [str(t) for t in ordered_tags(target("linux-64"))]
    assert tags[0] == "cp312-cp312-manylinux_2_28_x86_64"
    assert "cp312-cp312-manylinux_2_29_x86_64" not in tags
    assert tags.index("cp312-abi3-manylinux2014_x86_64") < tags.index("py3-none-any")


def wheel(name: str) -> dict[str, object]:
    return {"url": f"https://files.invalid/{name}", "hashes": {"sha256": name[:8]}}


def test_the_most_specific_fitting_wheel_is_chosen() -> None:
    package = {
        "name": "charset-normalizer",
        "version": "3.5.3",
        "sdist": wheel("charset_normalizer-3.5.3.tar.gz"),
        "wheels": [
            wheel("charset_normalizer-3.5.3-py3-none-any.whl"),
            wheel("charset_normalizer-3.5.3-cp37-abi3-manylinux_2_17_x86_64.whl"),
            wheel("charset_normalizer-3.5.3-cp312-cp312-manylinux_2_17_x86_64.whl"),
            wheel("charset_normalizer-3.5.3-cp312-cp312-manylinux_2_31_x86_64.whl"),
        ],
    }
    linux = target("linux-64")
    chosen = _choose(package, linux, ordered_tags(linux))
    assert chosen.location.endswith("cp312-cp312-manylinux_2_17_x86_64.whl")
    only_sdist = {"name": "x", "version": "1", "sdist": wheel("x-1.tar.gz")}
    assert _choose(only_sdist, linux, ordered_tags(linux)).location.endswith("x-1.tar.gz")
    with pytest.raises(ResolveError, match="no file of y 1 fits"):
        _choose({"name": "y", "version": "1", "wheels": []}, linux, ordered_tags(linux))


def test_previous_pins_become_a_pylock_uv_prefers() -> None:
    text = _preferences_file([PypiDist("Charset_Normalizer", "3.4.0", "https://x/y.whl")])
    assert tomlkit.parse(text).unwrap() == {
        "lock-version": "1.0",
        "created-by": "portenv",
        "packages": [{"name": "charset-normalizer", "version": "3.4.0"}],
    }


def test_markers_are_evaluated_for_the_target() -> None:
    environment = marker_environment("osx-arm64", "3.11.9")
    assert environment["sys_platform"] == "darwin"
    assert environment["platform_machine"] == "arm64"
    assert environment["python_version"] == "3.11"
    requires = {
        "httpx": ["anyio", "h2>=3 ; extra == 'http2'", "tomli ; python_version < '3.11'"],
        "anyio": ["idna"],
        "idna": [],
        "h2": [],
        "tomli": [],
    }
    plain = pypi_reach([("httpx", ())], requires, marker_environment("linux-64", "3.12.1"))
    assert plain.names == {"httpx", "anyio", "idna"} and plain.missing == ()
    extras = pypi_reach([("httpx", ("http2",))], requires, marker_environment("linux-64", "3.10"))
    assert extras.names == {"httpx", "anyio", "idna", "h2", "tomli"}
    missing = pypi_reach([("httpx", ())], {"httpx": ["sniffio"]}, environment)
    assert missing.missing == ("sniffio (needed by httpx)",)


def conda(name: str, *depends: str) -> CondaPackage:
    return CondaPackage(name, "1", "0", "linux-64", "u", "f", None, None, None, depends)


def test_conda_reach_follows_depends_and_skips_virtual_packages() -> None:
    packages = [conda("python", "__glibc >=2.17", "libffi >=3"), conda("libffi"), conda("zlib")]
    reach = conda_reach(["python 3.12.*"], packages)
    assert reach.names == {"python", "libffi"} and reach.missing == ()
    assert conda_reach(["greet"], packages).missing == ("greet (needed by the manifest)",)
    assert spec_name("conda-forge::numpy>=1") == "numpy"


def test_conda_python_packages_count_as_installed_for_pypi() -> None:
    python = CondaPackage("python", "3.12.1", "0", "linux-64", "u", "f", None, None, None)
    idna = conda("idna", "python >=3.6")
    assert conda_pypi_names([python, idna, conda("zlib")]) == {"idna": "1"}
    platform = Platform("linux-64", "linux-64", virtual_packages("linux-64", {}))
    requests = PypiDist("requests", "2.32.3", "https://x/requests-2.32.3-py3-none-any.whl")
    requests = replace(requests, requires_dist=("idna<4,>=2.5",))
    envs = [
        EnvironmentSpec(
            "default",
            (),
            None,
            ("https://c/",),
            (platform,),
            {"linux-64": ("python", "idna")},
            {"linux-64": (PypiRequirement("requests", "requests"),)},
            ("https://pypi.org/simple",),
        )
    ]

    def state(*dists: PypiDist) -> LockState:
        content = LockedEnvironmentContent(
            ("https://c/",), {"linux-64": (python, idna)}, {"linux-64": dists}, {}
        )
        platforms = (LockedPlatform("linux-64", "linux-64", platform.virtual_packages),)
        return LockState(platforms, {"default": content}, {"default": envs[0].indexes})

    assert differences(envs, state(requests)) == []
    twice = PypiDist("idna", "3.7", "https://x/idna-3.7-py3-none-any.whl")
    found = [d.message for d in differences(envs, state(requests, twice))]
    assert "PyPI package idna is locked, but conda installs it already" in found

"""What packing does with each PyPI entry: install, build, skip or refuse, with the reason."""

from __future__ import annotations

import pytest

from portenv._rattler import pypi_kind
from portenv.model import CondaPackage, PypiKind, PypiPackage
from portenv.source.pypi import EDITABLE, conflicts, decide, editable_notes, wheel_misfit

PY312 = (3, 12)


def pypi(name: str, url: str, kind: PypiKind | None = None) -> PypiPackage:
    return PypiPackage(name, "1.0", url, kind or pypi_kind(url), None)


def conda(name: str) -> CondaPackage:
    return CondaPackage(
        name,
        "1.0",
        "0",
        "linux-64",
        f"https://x.invalid/{name}.conda",
        f"{name}.conda",
        "a" * 64,
        None,
        1,
    )


@pytest.mark.parametrize(
    ("file_name", "fits"),
    [
        pytest.param("idna-3.10-py3-none-any.whl", True, id="pure"),
        pytest.param(
            "charset_normalizer-3.4.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            True,
            id="cp312-manylinux",
        ),
        pytest.param("cryptography-44.0.0-cp39-abi3-manylinux_2_28_x86_64.whl", True, id="abi3"),
        pytest.param("numpy-2.1.0-cp311-cp311-manylinux_2_17_x86_64.whl", False, id="other-python"),
        pytest.param("numpy-2.1.0-cp312-cp312-manylinux_2_17_aarch64.whl", False, id="other-arch"),
        pytest.param("numpy-2.1.0-cp312-cp312-musllinux_1_2_x86_64.whl", False, id="musl"),
        pytest.param("numpy-2.1.0-cp312-cp312-macosx_11_0_arm64.whl", False, id="macos"),
        pytest.param("numpy-2.1.0-cp312-cp312-win_amd64.whl", False, id="windows"),
        pytest.param("old-1.0-py2-none-any.whl", False, id="py2-only"),
        pytest.param("x-1.0-cp312-cp312-linux_x86_64.whl", True, id="plain-linux"),
    ],
)
def test_wheel_tags(file_name: str, fits: bool) -> None:
    misfit = wheel_misfit(file_name, PY312, "linux-64")
    assert (misfit is None) is fits, misfit
    if not fits:
        assert "do not fit CPython 3.12 on linux-64" in str(misfit)


def test_aarch64_target_takes_aarch64_wheels() -> None:
    assert wheel_misfit("n-1-cp312-cp312-manylinux2014_aarch64.whl", PY312, "linux-aarch64") is None
    assert wheel_misfit("n-1-cp312-cp312-manylinux2014_x86_64.whl", PY312, "linux-aarch64")


def test_bad_wheel_name() -> None:
    assert "not a valid wheel file name" in str(wheel_misfit("nonsense.whl", PY312, "linux-64"))


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        ("https://h.invalid/p/idna-3.10-py3-none-any.whl", "wheel"),
        ("https://h.invalid/p/idna-3.10-py3-none-any.whl#sha256=ab", "wheel"),
        ("direct+https://h.invalid/x-1.0.tar.gz", "sdist"),
        ("./vendor/x-1.0.zip", "sdist"),
        ("git+https://h.invalid/x.git@abc", "git"),
        ("./local-src", "path"),
    ],
)
def test_kinds(location: str, kind: str) -> None:
    assert pypi_kind(location) == kind


def test_sdist_is_built_on_the_host_platform_only() -> None:
    sdist = pypi("x", "direct+https://h.invalid/x-1.0.tar.gz")
    assert (
        decide(sdist, python_version=PY312, subdir="linux-64", host_subdir="linux-64").action
        == "build"
    )
    cross = decide(sdist, python_version=PY312, subdir="linux-aarch64", host_subdir="linux-64")
    assert cross.action == "refuse"
    assert "not this machine" in cross.reason and "--skip-pypi x" in cross.reason


def test_skip_wins_and_matches_normalized_names() -> None:
    bad = pypi("Charset_Normalizer", "https://h.invalid/c-1-cp39-cp39-win32.whl")
    skipped = decide(
        bad,
        python_version=PY312,
        subdir="linux-64",
        host_subdir="linux-64",
        skip=["charset-normalizer"],
    )
    assert skipped.action == "skip"


def test_editable_is_built_as_a_copy_on_the_host_and_git_too() -> None:
    host: dict[str, str] = {"subdir": "linux-64", "host_subdir": "linux-64"}
    folder = pypi("e", "./e", "editable")
    editable = decide(folder, python_version=PY312, **host)
    assert (editable.action, editable.reason) == ("build", EDITABLE)
    plain = decide(pypi("p", "./p", "path"), python_version=PY312, **host)
    assert (plain.action, plain.reason) == ("build", "")
    assert editable_notes([editable, plain]) == (
        "e (./e) is editable in the source: installed as a normal (non-editable) copy, built now",
    )
    cross = decide(folder, python_version=PY312, subdir="linux-aarch64", host_subdir="linux-64")
    assert cross.action == "refuse"
    assert cross.reason.startswith("a local source folder (editable in the source) must be built")
    assert editable_notes([cross]) == ()
    git = pypi("g", "git+https://h.invalid/g.git#abc1234")
    on_host = decide(git, python_version=PY312, **host)
    assert on_host.action == "build"
    cross = decide(git, python_version=PY312, subdir="linux-aarch64", host_subdir="linux-64")
    assert cross.action == "refuse" and "a git dependency must be built" in cross.reason


def test_conda_and_pypi_conflict() -> None:
    found = conflicts(
        [conda("requests"), conda("python")],
        [pypi("Requests", "https://h.invalid/requests-2-py3-none-any.whl")],
    )
    assert found == [
        "Requests is installed both by conda and by PyPI: keep one (or --skip-pypi Requests)"
    ]
    skipped = decide(
        pypi("requests", "https://h.invalid/requests-2-py3-none-any.whl"),
        python_version=PY312,
        subdir="linux-64",
        host_subdir="linux-64",
        skip=["requests"],
    )
    assert conflicts([conda("requests")], [skipped]) == []

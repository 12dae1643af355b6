"""Specs in their three spellings: command line, manifest (as pixi writes it), resolver input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from portenv import _rattler
from portenv.errors import InputError, ManifestError
from portenv.project.specs import (
    conda_matchspec,
    conda_pin,
    conda_value,
    parse_pypi,
    pypi_pin,
    pypi_requirement,
    pypi_value,
)


def rendered(value: Any) -> str:
    return value if isinstance(value, str) else str(value.as_string())


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("python=3.12", "3.12.*", id="equals-is-a-prefix"),
        pytest.param("python 3.12.*", "3.12.*", id="space"),
        pytest.param("numpy>=1.26,<2", ">=1.26,<2", id="range"),
        pytest.param("requests", "*", id="bare"),
        pytest.param("openssl 3.3.1 *_0", '{ version = "==3.3.1", build = "*_0" }', id="build"),
        pytest.param("conda-forge::numpy", '{ version = "*", channel = "conda-forge" }', id="chan"),
    ],
)
def test_conda_specs_are_written_as_pixi_writes_them(spec: str, expected: str) -> None:
    assert rendered(conda_value(_rattler.parse_spec(spec))) == expected


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        pytest.param("python", "3.11.*", "python 3.11.*", id="string"),
        pytest.param("pip", "*", "pip", id="any"),
        pytest.param("openssl", {"version": "3.3.1", "build": "*_0"}, "openssl 3.3.1 *_0", id="b"),
        pytest.param("numpy", {"version": ">=1", "channel": "cf"}, "cf::numpy >=1", id="chan"),
    ],
)
def test_manifest_entries_become_matchspecs(name: str, value: Any, expected: str) -> None:
    assert conda_matchspec(name, value) == expected


def test_source_dependencies_are_refused() -> None:
    with pytest.raises(ManifestError, match="built from source"):
        conda_matchspec("local-pkg", {"path": "."})


def test_an_unparsable_spec_is_an_input_error() -> None:
    with pytest.raises(InputError, match="invalid conda package spec") as caught:
        _rattler.parse_spec("python=>=3")
    assert caught.value.hint


@pytest.mark.parametrize(
    ("versions", "conda", "pypi"),
    [
        pytest.param(["1.41.1"], ">=1.41.1,<2", ">=1.41.1, <2", id="major"),
        pytest.param(["0.26.0"], ">=0.26.0,<0.27", ">=0.26.0, <0.27", id="zero-major"),
        pytest.param(["2.32.3", "2.31.0"], ">=2.31.0,<3", ">=2.31.0, <3", id="lowest-wins"),
        pytest.param(["2024b"], ">=2024b", ">=2024b0, <2025", id="not-numeric"),
    ],
)
def test_bare_names_are_pinned_like_pixi(versions: list[str], conda: str, pypi: str) -> None:
    assert conda_pin(versions) == conda
    assert pypi_pin(versions) == pypi


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("rich>=13", ">=13", id="version"),
        pytest.param("rich", "*", id="bare"),
        pytest.param("httpx[http2]>=0.27", '{ version = ">=0.27", extras = ["http2"] }', id="x"),
        pytest.param("pkg @ https://h.invalid/pkg.whl", '{ url = "https://h.invalid/pkg.whl" }'),
        pytest.param(
            "pkg @ git+https://h.invalid/r.git@v1",
            '{ git = "https://h.invalid/r.git", rev = "v1" }',
        ),
    ],
)
def test_pypi_requirements_are_written_as_pixi_writes_them(text: str, expected: str) -> None:
    assert rendered(pypi_value(parse_pypi(text), Path("/project"))) == expected


def test_a_file_inside_the_project_is_written_relative(tmp_path: Path) -> None:
    wheel = tmp_path / "dist" / "pkg-1.0-py3-none-any.whl"
    value = pypi_value(parse_pypi(f"pkg @ {wheel.as_uri()}"), tmp_path)
    assert rendered(value) == '{ path = "./dist/pkg-1.0-py3-none-any.whl" }'
    requirement = pypi_requirement("pkg", {"path": "./dist/pkg-1.0-py3-none-any.whl"}, tmp_path)
    assert requirement.location == "./dist/pkg-1.0-py3-none-any.whl"
    assert requirement.pep508 == f"pkg @ {wheel.as_uri()}"


def test_markers_have_no_place_in_a_manifest() -> None:
    with pytest.raises(InputError, match="markers"):
        parse_pypi('tomli; python_version < "3.11"')


def test_manifest_pypi_entries_become_requirements(tmp_path: Path) -> None:
    plain = pypi_requirement("requests", ">=2", tmp_path)
    assert (plain.pep508, plain.specifier, plain.location) == ("requests>=2", ">=2", None)
    extras = pypi_requirement("httpx", {"version": "*", "extras": ["http2"]}, tmp_path)
    assert extras.pep508 == "httpx[http2]" and extras.extras == ("http2",)
    git = pypi_requirement("r", {"git": "https://h.invalid/r.git", "rev": "abc"}, tmp_path)
    assert git.pep508 == "r @ git+https://h.invalid/r.git@abc"
    with pytest.raises(ManifestError, match="invalid version"):
        pypi_requirement("bad", "=>2", tmp_path)

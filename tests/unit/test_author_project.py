"""What a manifest means: environments, features, targets, channels, virtual packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from portenv.errors import ManifestError
from portenv.project.environments import (
    EnvironmentSpec,
    channel_url,
    environments,
    solver_channel,
    virtual_packages,
)
from portenv.project.manifest import Manifest
from tests.support.realdata import REALDATA


def by_name(envs: list[EnvironmentSpec]) -> dict[str, EnvironmentSpec]:
    return {env.name: env for env in envs}


@pytest.mark.parametrize(
    ("subdir", "requirements", "expected"),
    [
        pytest.param(
            "linux-64",
            {},
            ("__unix=0=0", "__linux=4.18", "__glibc=2.28", "__archspec=0=x86_64"),
            id="linux-defaults",
        ),
        pytest.param(
            "linux-aarch64",
            {"libc": "2.17", "cuda": "12"},
            ("__cuda=12", "__unix=0=0", "__linux=4.18", "__glibc=2.17", "__archspec=0=aarch64"),
            id="linux-cuda",
        ),
        pytest.param("osx-arm64", {}, ("__unix=0=0", "__osx=13.0", "__archspec=0=m1"), id="osx"),
        pytest.param("win-64", {}, ("__win=10.0", "__archspec=0=x86_64"), id="win"),
    ],
)
def test_virtual_packages_follow_pixis_defaults(
    subdir: str, requirements: dict[str, str], expected: tuple[str, ...]
) -> None:
    assert virtual_packages(subdir, requirements) == expected


def test_channels_as_the_lock_names_them(tmp_path: Path) -> None:
    assert channel_url("conda-forge", tmp_path) == "https://conda.anaconda.org/conda-forge/"
    assert channel_url("file:///srv/channel", tmp_path) == "file:///srv/channel"
    assert channel_url("./channel", tmp_path) == "./channel"
    assert channel_url("/srv/channel", tmp_path) == "file:///srv/channel"
    assert solver_channel("./channel", tmp_path) == (tmp_path / "channel").as_uri()


MANIFEST = """\
[workspace]
name = "demo"
channels = ["conda-forge"]
platforms = ["linux-64", "osx-arm64"]

[system-requirements]
libc = { family = "glibc", version = "2.31" }

[dependencies]
python = "3.12.*"
numpy = ">=1"

[target.linux.dependencies]
numpy = ">=2"
patchelf = "*"

[pypi-dependencies]
rich = ">=13"

[feature.test]
channels = ["bioconda"]
platforms = ["linux-64"]

[feature.test.dependencies]
pytest = "*"
python = ">=3.12.1"

[feature.test.pypi-dependencies]
httpx = { version = ">=0.27", extras = ["http2"] }

[environments]
test = ["test"]
lean = { features = ["test"], no-default-feature = true, solve-group = "g" }
"""


def test_features_targets_and_platforms_compose(tmp_path: Path) -> None:
    (tmp_path / "pixi.toml").write_text(MANIFEST)
    envs = by_name(environments(Manifest.from_path(tmp_path)))
    assert set(envs) == {"default", "test", "lean"}
    default = envs["default"]
    assert [p.name for p in default.platforms] == ["linux-64", "osx-arm64"]
    assert default.conda["linux-64"] == ("python 3.12.*", "numpy >=2", "patchelf")
    assert default.conda["osx-arm64"] == ("python 3.12.*", "numpy >=1")
    assert "__glibc=2.31" in default.platforms[0].virtual_packages
    assert [r.pep508 for r in default.pypi["linux-64"]] == ["rich>=13"]
    test = envs["test"]
    assert [p.name for p in test.platforms] == ["linux-64"]
    assert test.channels == (
        "https://conda.anaconda.org/bioconda/",
        "https://conda.anaconda.org/conda-forge/",
    )
    assert test.conda["linux-64"] == (
        "pytest",
        "python >=3.12.1",
        "python 3.12.*",
        "numpy >=2",
        "patchelf",
    )
    assert [r.pep508 for r in test.pypi["linux-64"]] == ["httpx[http2]>=0.27", "rich>=13"]
    lean = envs["lean"]
    assert lean.conda["linux-64"] == ("pytest", "python >=3.12.1")
    assert lean.solve_group == "g"


def test_pyproject_requires_python_becomes_the_python_dependency(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nrequires-python = ">= 3.11"\ndependencies = ["rich>=13"]\n\n'
        '[tool.pixi.workspace]\nchannels = ["conda-forge"]\nplatforms = ["linux-64"]\n'
    )
    (env,) = environments(Manifest.from_path(tmp_path))
    assert env.conda["linux-64"] == ("python >=3.11",)
    assert [r.pep508 for r in env.pypi["linux-64"]] == ["rich>=13"]


def test_an_undefined_feature_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pixi.toml").write_text(
        '[workspace]\nname = "x"\nplatforms = ["linux-64"]\n\n[environments]\nbad = ["nope"]\n'
    )
    with pytest.raises(ManifestError, match="'nope'"):
        environments(Manifest.from_path(tmp_path))


def test_named_platforms_carry_their_own_requirements() -> None:
    (env,) = environments(Manifest.from_path(REALDATA / "v7-named-platforms"))
    platforms = {p.name: p for p in env.platforms}
    assert platforms["cuda-linux-64"].subdir == "linux-64"
    assert platforms["cuda-linux-64"].virtual_packages[0] == "__cuda=12"
    assert "__osx=13.5" in platforms["osx-arm64"].virtual_packages
    assert env.conda["osx-arm64"][-1] == "mlx >=0.20,<0.21"  # [target.osx.dependencies]
    assert all("mlx" not in s for s in env.conda["linux-64"])


def test_solve_groups_and_feature_lists_of_real_manifests() -> None:
    webserver = by_name(environments(Manifest.from_path(REALDATA / "webserver")))
    assert webserver["default"].solve_group == webserver["prod"].solve_group == "prod"
    assert "pytest" in webserver["default"].conda["linux-64"]
    assert "pytest" not in webserver["prod"].conda["linux-64"]
    multi = by_name(environments(Manifest.from_path(REALDATA / "v4-multiple-environments")))
    assert multi["py311"].conda["linux-64"] == (
        "python 3.11.*",
        "python >=3.11",
        "pip",
        "polars >=0.14.24,<0.21",
    )

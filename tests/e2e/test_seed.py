"""The seed workflow: python 3.12 + requests + httpx from PyPI, run on bare targets, no network."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
import tomlkit

from tests.conftest import Archives, portenv
from tests.e2e.test_core import assert_only_under
from tests.support.pypilock import make_sdist, write_pypi_project
from tests.support.rootfs import run_in_rootfs

pytestmark = pytest.mark.e2e

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"


def seed_specs() -> tuple[list[str], list[str]]:
    """The example's conda specs and PyPI requirements, read from its pixi.toml."""
    manifest = tomlkit.parse((SEED / "pixi.toml").read_text())
    conda = [f"{name} {spec}" for name, spec in manifest["dependencies"].items()]
    pypi = [name for name in manifest["pypi-dependencies"]]
    return conda, pypi


@pytest.fixture(scope="session")
def seed_archives(
    local_channel: Path, package_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Archives:
    conda, pypi = seed_specs()
    root = tmp_path_factory.mktemp("seed")
    sdist = make_sdist(
        root,
        "hello-sdist",
        "0.3",
        module_source="def main():\n    print('sdist built ok')\n",
        console_script="hello-sdist",
    )
    project = write_pypi_project(root / "project", local_channel, conda, pypi, local_sdists=[sdist])
    dist = root / "dist"
    dist.mkdir()
    for name in ("env.sh", "env.tar"):
        portenv("pack", project, "-o", dist / name, "--use-cache", package_cache)
    portenv("unpacker", "-o", dist / "portenv-unpack")
    shutil.copy(SEED / "test_venv.py", dist / "test_venv.py")
    return Archives(dist, dist / "env.sh", dist / "env.tar", dist / "portenv-unpack")


def checks(env: str) -> list[str]:
    q = shlex.quote(env)
    return [
        f"EXPECTED_PREFIX={q} {q}/bin/python /dist/test_venv.py",
        f"{q}/bin/normalizer --version",
        f"{q}/bin/hello-sdist",
        f"cat {q}/lib/python3.12/site-packages/requests-*.dist-info/INSTALLER",
        f"ls {q}/lib/python3.12/site-packages/hello_sdist-0.3.dist-info/",
        f"(. {q}/bin/activate && echo SSL_CERT_FILE=$SSL_CERT_FILE && python /dist/test_venv.py)",
    ]


@pytest.mark.parametrize(
    ("target", "line"),
    [
        pytest.param("busybox", "sh /dist/env.sh -o '/opt/my apps'", id="busybox-env.sh"),
        pytest.param(
            "trixie",
            "sh /dist/portenv-unpack /dist/env.tar -o '/opt/my apps'",
            id="debian13-unpack",
        ),
    ],
)
def test_seed_workflow_on_bare_targets(
    request: pytest.FixtureRequest, seed_archives: Archives, target: str, line: str
) -> None:
    root = request.getfixturevalue(f"{target}_root")
    env, moved = "/opt/my apps/env", "/srv/moved env"
    lines = [
        line,
        *checks(env),
        "mkdir -p /srv",
        f"mv '{env}' '{moved}'",
        f"'{moved}/bin/portenv-relocate'",
        *checks(moved),
    ]
    result = run_in_rootfs(
        root,
        ["/bin/sh", "-c", "set -e\n" + "\n".join(lines)],
        binds=[(seed_archives.folder, "/dist")],
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    assert out.count("\nOK\n") + out.startswith("OK\n") == 4, out
    assert out.count("sdist built ok") == 2
    assert out.count("Charset-Normalizer") == 2
    assert out.count("portenv\n") >= 2, "INSTALLER must name portenv"
    assert "direct_url.json" in out, "a path dependency records where it came from"
    assert f"SSL_CERT_FILE={env}/lib/python3.12/site-packages/certifi/cacert.pem" in out
    assert f"python 3.12.1 at {moved}" in out
    assert_only_under(result, ["/opt/my apps", "/srv/moved env"])

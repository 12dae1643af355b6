"""`portenv pack --format pixi-pack`: pixi-pack's layout from the lock, the same bytes each time."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from tests.conftest import portenv
from tests.support.pypilock import make_sdist, write_pypi_project


def test_pixi_pack_archive_of_the_core_project(
    core_project: Path, package_cache: Path, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    for out in (first, second):
        portenv(
            "pack", core_project, "--format", "pixi-pack", "-o", out, "--use-cache", package_cache
        )
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as archive:
        names = archive.getnames()
        meta = archive.extractfile("pixi-pack.json")
        assert meta is not None
        info = json.loads(meta.read())
    assert info["version"] == "1" and info["platform"] == "linux-64"
    assert "environment.yml" in names and "channel/linux-64/repodata.json" in names
    assert any(n.startswith("channel/linux-64/greet-1.0.0-") for n in names)
    assert any(n.startswith("channel/noarch/hello-py-") for n in names)
    assert not any(n.startswith("pypi") for n in names)
    assert (tmp_path / "a.tar.sha256").read_text().endswith("  a.tar\n")


def test_pixi_pack_refuses_what_needs_building(
    local_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    sdist = make_sdist(tmp_path, "needs-build", "1.0", module_source="X = 1\n")
    project = write_pypi_project(
        tmp_path / "p", local_channel, ["python 3.12.*"], [], local_sdists=[sdist]
    )
    out = tmp_path / "env.tar"
    done = portenv(
        "pack",
        project,
        "--format",
        "pixi-pack",
        "-o",
        out,
        "--use-cache",
        package_cache,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: pixi-pack archives carry wheels only")
    assert not out.exists()
    done = portenv("pack", project, "--format", "pixi-pack", "-o", tmp_path / "env.sh", check=False)
    assert done.returncode == 1 and "a pixi-pack archive is a .tar" in done.stderr

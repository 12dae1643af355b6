"""A whole authoring session without pixi, ending on a bare target: init -> add -> run -> pack."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import portenv
from tests.support.rootfs import run_in_rootfs

pytestmark = pytest.mark.e2e

SCRIPT = "import idna, sys\nprint('ok', idna.__version__, sys.prefix)\n"


def test_session_from_init_to_a_bare_target(
    local_channel: Path, package_cache: Path, busybox_root: Path, tmp_path: Path
) -> None:
    project = tmp_path / "app"
    cache = ["--use-cache", str(package_cache)]
    portenv("init", project, "-c", local_channel.as_uri())
    portenv("add", "--project", project, "python=3.12", "greet", "hello-py", *cache)
    portenv("add", "--project", project, "--pypi", "idna", *cache)
    (project / "t.py").write_text(SCRIPT)

    ran = portenv("run", "--project", project, *cache, "python", str(project / "t.py"))
    assert ran.stdout.startswith("ok ") and ".pixi/envs/default" in ran.stdout
    code = portenv("run", "--project", project, *cache, "sh", "-c", "exit 7", check=False)
    assert code.returncode == 7, "run passes the command's exit code through"

    manifest, lock = (project / "pixi.toml").read_bytes(), (project / "pixi.lock").read_bytes()
    bad = portenv("add", "--project", project, "no-such-package", *cache, check=False)
    assert bad.returncode == 1 and "no-such-package" in bad.stderr
    assert (project / "pixi.toml").read_bytes() == manifest, "a failed add rolls the edit back"
    assert (project / "pixi.lock").read_bytes() == lock

    portenv("remove", "--project", project, "greet", *cache)
    assert "greet" not in (project / "pixi.toml").read_text()
    portenv("lock", "--project", project, "--check")
    (project / "pixi.toml").write_text(
        (project / "pixi.toml")
        .read_text()
        .replace("[dependencies]", '[dependencies]\nlibbar = "*"')
    )
    stale = portenv("lock", "--project", project, "--check", check=False)
    assert stale.returncode == 1 and "libbar" in stale.stderr
    packed_stale = portenv("pack", project, "-o", tmp_path / "stale.sh", *cache)
    assert "pixi.lock is stale" in packed_stale.stderr
    portenv("lock", "--project", project, *cache)
    portenv("lock", "--project", project, "--check")

    dist = tmp_path / "dist"
    dist.mkdir()
    portenv("pack", project, "-o", dist / "app.sh", *cache)
    (dist / "t.py").write_text(SCRIPT)
    result = run_in_rootfs(
        busybox_root,
        [
            "/bin/sh",
            "-c",
            "sh /dist/app.sh -o /opt && /opt/env/bin/python /dist/t.py && /opt/env/bin/barcli",
        ],
        binds=[(dist, "/dist")],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ") and "/opt/env\n" in result.stdout
    assert "bar=43" in result.stdout

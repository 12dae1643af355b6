"""`portenv delta` and `portenv unpack UPDATE` on the build machine: the Python apply path gives
the tree a fresh unpack gives, the refusals are one error line and a hint, and the sh unpacker
refuses what an update cannot do."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import portenv
from tests.support.deltas import conda_updates, snapshot


@pytest.fixture(scope="module")
def dist(
    local_channel: Path, package_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("delta-cli") / "dist"
    folder.mkdir()
    return conda_updates(folder, local_channel, package_cache)


def refused(done: subprocess.CompletedProcess[str], code: int, what: str) -> None:
    lines = done.stderr.splitlines()
    assert done.returncode == code, done.stderr
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("  hint: ")
    assert what in lines[0], lines


def test_portenv_unpack_applies_an_update(dist: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    portenv("unpack", dist / "A.sh", "-o", out)
    said = portenv("unpack", dist / "AB.sh", "-o", out).stderr.splitlines()
    assert said[0].startswith(f"portenv: updated {out / 'env'} ("), said
    refused(portenv("unpack", dist / "AB.sh", "-o", out, check=False), 5, "already updated")
    updated = snapshot(out / "env")
    assert sorted(p.name for p in out.iterdir()) == ["env"]
    (out / "env").rename(tmp_path / "updated")
    portenv("unpack", dist / "B.sh", "-o", out)
    assert updated == snapshot(out / "env")


def test_an_env_unpacked_by_sh_takes_the_python_apply_and_back(dist: Path, tmp_path: Path) -> None:
    """The sh unpacker and portenv unpack make the same env, so either applies either's."""
    out = tmp_path / "out"
    subprocess.run(["sh", dist / "A.sh", "-o", out], check=True, capture_output=True)
    portenv("unpack", dist / "AB.sh", "-o", out)
    done = subprocess.run(["sh", dist / "BC.sh", "-o", out], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    updated = snapshot(out / "env")
    (out / "env").rename(tmp_path / "updated")
    subprocess.run(["sh", dist / "C.sh", "-o", out], check=True, capture_output=True)
    assert updated == snapshot(out / "env")


def test_info_says_from_to_and_counts(dist: Path) -> None:
    info = portenv("unpack", dist / "AB.sh", "--info").stdout.splitlines()
    assert "format=update1" in info
    meta = dict(line.split("=", 1) for line in info if "=" in line)
    assert info[-1] == (
        f"update from {meta['from_sha256']} to {meta['to_sha256']}: adds {meta['adds']}, "
        f"changes {meta['changes']}, removes {meta['removes']} files"
    )
    sh = subprocess.run(["sh", dist / "AB.sh", "--info"], capture_output=True, text=True)
    assert sh.stdout.splitlines()[-1] == info[-1]
    refused(portenv("unpack", dist / "AB.sh", "--list", check=False), 2, "it lists no packages")


@pytest.mark.parametrize(
    ("args", "what"),
    [
        pytest.param(["--run", "python"], "it cannot --run", id="run"),
        pytest.param(["-o", "OUT", "--force"], "--force does not apply", id="force"),
        pytest.param(["--list"], "it lists no packages", id="list"),
        pytest.param(["-o", "OUT"], "is not a portenv environment to update", id="no-env"),
    ],
)
def test_the_sh_unpacker_refuses(dist: Path, tmp_path: Path, args: list[str], what: str) -> None:
    argv = ["sh", str(dist / "AB.sh"), *(str(tmp_path) if a == "OUT" else a for a in args)]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == (5 if what.startswith("is not") else 2), done.stderr
    assert what in done.stderr.splitlines()[0]
    assert list(tmp_path.iterdir()) == []


def test_delta_refusals_write_nothing(dist: Path, tmp_path: Path) -> None:
    out = tmp_path / "u.sh"
    refused(
        portenv("delta", dist / "AB.sh", dist / "B.sh", "-o", out, check=False), 1, "is an update"
    )
    refused(
        portenv("delta", dist / "A.sh", dist / "B.sh", "-o", tmp_path / "u.zip", check=False),
        1,
        "unknown output type",
    )
    refused(
        portenv("delta", dist / "A.sh", dist / "B.sh", "-o", dist / "A.sh", check=False),
        1,
        "is OLD itself",
    )
    refused(
        portenv("delta", tmp_path / "none.sh", dist / "B.sh", "-o", out, check=False),
        1,
        "cannot read",
    )
    assert list(tmp_path.iterdir()) == []

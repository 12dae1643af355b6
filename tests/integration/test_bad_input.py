"""Platforms portenv cannot pack for: one clear line, exit 1, no traceback, nothing written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.hardening import record
from tests.support.realdata import check_outcome, copied, run_cli

pytestmark = pytest.mark.hardening


def _refused(argv: list[str], words: str) -> str:
    code, stderr = run_cli(argv)
    check_outcome(argv, code, stderr, "an unknown platform")
    assert code == 1, stderr
    first = stderr.splitlines()[0]
    assert words in first, first
    assert "\n  hint: " in stderr
    return first


LACKS = "is not in the lock for environment default (it has: linux-64)"


@pytest.mark.parametrize(
    ("platform", "words"),
    [
        ("linux-sparc", f"platform linux-sparc {LACKS}"),
        ("LINUX-64", f"platform LINUX-64 {LACKS}"),
        ("linux-64 ", f"platform linux-64  {LACKS}"),
        ("", "the platform given with -p is empty"),
    ],
)
def test_a_platform_the_lock_lacks(
    core_project: Path, tmp_path: Path, platform: str, words: str
) -> None:
    _refused(["plan", str(core_project), "-p", platform], words)
    out = tmp_path / "out"
    out.mkdir()
    argv = ["pack", str(core_project), "-p", platform, "-o", str(out / "env.sh")]
    _refused([*argv, "--use-cache", str(tmp_path / "cache")], words)
    assert list(out.iterdir()) == []
    record("bad input", f"-p {platform!r} (not in the lock)", "refused, exit 1, nothing written")


@pytest.mark.parametrize("platform", ["osx-arm64", "win-64"])
def test_a_locked_platform_that_is_not_linux(tmp_path: Path, platform: str) -> None:
    """The real lock has it, so plan shows it with the refusal; pack refuses before fetching."""
    with copied("v6-simple-python") as project:
        code, stderr = run_cli(["plan", str(project), "-p", platform])
        assert code == 0, stderr
        out = tmp_path / "out"
        out.mkdir()
        argv = ["pack", str(project), "-p", platform, "-o", str(out / "env.sh")]
        first = _refused([*argv, "--use-cache", str(tmp_path / "cache")], f"for {platform}")
        assert f"platform {platform} is not Linux" in first
        assert list(out.iterdir()) == []
        assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.conda"))
    record("bad input", f"-p {platform} (locked, not Linux)", "refused, exit 1, nothing written")


def test_a_foreign_platform_for_a_local_interpreter(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    argv = ["pack", "--python", sys.executable, "-p", "linux-sparc", "-o", str(out / "env.sh")]
    _refused(argv, "not linux-sparc")
    assert list(out.iterdir()) == []
    record("bad input", "--python with -p linux-sparc", "refused, exit 1, nothing written")

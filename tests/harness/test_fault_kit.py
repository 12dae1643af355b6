"""The fault campaign's own tools: the kill points, the shim, the sh library."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.faults import SUPPORT, leftovers, make_kit, spread, unknown_leftovers


def test_spread_draws_one_point_per_slice() -> None:
    points = spread(30, 7)
    assert points == spread(30, 7)
    assert points != spread(30, 8)
    assert [p * 30 // 1000 for p in points] == list(range(30))


def test_leftovers() -> None:
    entries = "env,.portenv-lock.env,.portenv-tmp.env.42,.portenv-old.env.7,stray"
    assert leftovers(entries) == [
        ".portenv-lock.env",
        ".portenv-tmp.env.PID",
        ".portenv-old.env.PID",
        "stray",
    ]
    assert unknown_leftovers(entries) == ["stray"]
    assert unknown_leftovers("-") == []


def shim(kit: Path, tmp_path: Path, at: str, *args: str) -> subprocess.CompletedProcess[str]:
    report = f"if [ -e {args[-1]} ]; then echo after; else echo before; fi >{tmp_path / 'fired'}"
    env = {
        **os.environ,
        "PATH": f"{kit / 'shim'}:{os.environ['PATH']}",
        "FAULT_AT": at,
        "FAULT_DO": report,  # says whether the command had run
    }
    return subprocess.run(["mkdir", *args], env=env, capture_output=True, text=True, check=False)


def test_shim_fires_only_at_its_call(tmp_path: Path) -> None:
    kit = make_kit(tmp_path / "kit")
    assert shim(kit, tmp_path, "after:mkdir:*/.portenv-tmp.*", str(tmp_path / "a")).returncode == 0
    assert (tmp_path / "a").is_dir() and not (tmp_path / "fired").exists()  # not its call
    hit = shim(kit, tmp_path, "after:mkdir:*/.portenv-tmp.*", str(tmp_path / ".portenv-tmp.x"))
    assert hit.returncode == 0 and (tmp_path / ".portenv-tmp.x").is_dir()
    assert (tmp_path / "fired").read_text() == "after\n"
    before = shim(kit, tmp_path, "before:mkdir:*/b", str(tmp_path / "b"))
    assert before.returncode == 0 and (tmp_path / "b").is_dir()
    assert (tmp_path / "fired").read_text() == "before\n"


def test_kit_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed: run scripts/install-system-deps.sh --tests")
    files = [SUPPORT / "faults.sh", SUPPORT / "fault-shim.sh"]
    proc = subprocess.run(
        [shellcheck, "-s", "sh", *map(str, files)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout

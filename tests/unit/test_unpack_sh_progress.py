"""The sh unpacker's progress lines: one a phase, at a terminal, for environments over 100 MiB.

Machine-readable runs (stderr to a pipe or a file) and small environments print exactly what
they printed before: the final `portenv: unpacked ...` line.
"""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import pytest

from tests.support.unpacksh import Unpacker, build_tar

PHASES = ["extracting 195 MiB into", "checking 9 files", "relocating to"]


def _run_on_a_terminal(up: Unpacker, archive: Path, out: Path) -> tuple[int, str]:
    """Run the unpacker with its stderr on a pseudo-terminal; return the code and what it said."""
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [*up.argv(archive), "-o", str(out)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=follower,
            env=up.env(),
            check=False,
            timeout=120,
        )
        os.close(follower)
        follower = -1
        said = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal is closed once everything was read
                break
            if not chunk:
                break
            said += chunk
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    return done.returncode, said.decode().replace("\r\n", "\n")


@pytest.mark.parametrize("kib", [200_000, 50_000])
def test_phases_at_a_terminal_for_large_environments(up: Unpacker, kib: int) -> None:
    archive = up.write(build_tar(meta={"unpacked_kib": str(kib)}))
    code, said = _run_on_a_terminal(up, archive, up.tmp / "out")
    assert code == 0, said
    lines = said.splitlines()
    assert lines[-1].startswith("portenv: unpacked 9 files into"), said
    progress = [line for line in lines if line.endswith(" ...")]
    if kib < 102_400:
        assert progress == [], said
        return
    assert len(progress) == len(PHASES), said
    for line, phase in zip(progress, PHASES, strict=True):
        assert line.startswith(f"portenv: {phase}"), said


def test_no_phases_in_a_pipe(up: Unpacker) -> None:
    archive = up.write(build_tar(meta={"unpacked_kib": "200000"}))
    res = up.run(archive, "-o", str(up.tmp / "out"))
    assert res.code == 0, res.stderr
    assert res.stderr.splitlines() == [f"portenv: unpacked 9 files into {up.tmp / 'out' / 'env'}"]

"""Every cut of the unpacker fails before anything runs, under dash, bash and busybox sh.

A shell runs a script as it reads it: before line 2 checked the file's size, an env.sh cut after
some function definitions ended there with exit 0, having done nothing. Now line 2 compares
the file's size with the one portenv wrote into it, so every cut after it is exit 3 with one
error line and one hint, and a cut inside it is a syntax error. Every cut is tried, not a
sample: of the standalone unpacker, and of an env.sh through its header and the container's
meta block (its payload is data the shell never reads: a sample of it, and one byte more).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from portenv.write.container import PAYLOAD_OFFSET, render_unpacker
from tests.support.unpacksh import Shell, build_sh, build_tar

pytestmark = pytest.mark.slow

WORKERS = 4
HINT = "  hint: copy it again, and run it as: sh FILE"


@dataclass(frozen=True)
class Outcome:
    cut: int
    code: int
    stderr: str
    wrote: bool


def _line_ends(data: bytes) -> tuple[int, int]:
    """Where lines 1 and 2 end (the offset just past each newline)."""
    first = data.index(b"\n") + 1
    return first, data.index(b"\n", first) + 1


def _try_cuts(shell: Shell, data: bytes, cuts: Sequence[int], scratch: Path) -> list[Outcome]:
    """Run `shell FILE -o OUT` on each cut of `data`; a few workers, one file and folder each."""

    def work(worker: int) -> list[Outcome]:
        file, out = scratch / f"cut-{worker}.sh", scratch / f"out-{worker}"
        outcomes = []
        for cut in cuts[worker::WORKERS]:
            file.write_bytes(data[:cut])
            done = subprocess.run(
                [*shell.argv, str(file), "-o", str(out)],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "PATH": shell.path},
                timeout=60,
            )
            outcomes.append(Outcome(cut, done.returncode, done.stderr, out.exists()))
        return outcomes

    with ThreadPoolExecutor(WORKERS) as pool:
        return [o for found in pool.map(work, range(WORKERS)) for o in found]


def _check(outcomes: Iterable[Outcome], data: bytes) -> None:
    """After line 2: exit 3, the two exact lines; inside line 2: non-zero; never a write."""
    first, second = _line_ends(data)
    refusal = re.compile(
        rf"error: .*/cut-\d\.sh is truncated or damaged: it is not {len(data)} bytes long\n"
        + re.escape(HINT)
        + "\n"
    )
    wrong = []
    for o in outcomes:
        if o.wrote:
            wrong.append(f"cut {o.cut}: wrote the output folder")
        elif o.cut >= second and (o.code != 3 or not refusal.fullmatch(o.stderr)):
            wrong.append(f"cut {o.cut}: exit {o.code}, {o.stderr!r}")
        elif first < o.cut < second and o.code == 0:
            wrong.append(f"cut {o.cut} inside line 2: exit 0")
    assert not wrong, f"{len(wrong)} bad cuts, the first: {wrong[:5]}"


def test_every_cut_of_the_standalone_unpacker(shell: Shell, tmp_path: Path) -> None:
    data = render_unpacker(embedded=False)
    cuts = range(1, len(data))
    outcomes = _try_cuts(shell, data, cuts, tmp_path)
    assert len(outcomes) == len(data) - 1
    _check(outcomes, data)


def test_every_cut_of_an_env_sh_header_and_meta(shell: Shell, tmp_path: Path) -> None:
    data = build_sh(build_tar())
    header = len(render_unpacker(embedded=True))
    payload_cuts = range(header + PAYLOAD_OFFSET, len(data), 97)
    cuts = [*range(1, header + PAYLOAD_OFFSET), *payload_cuts, len(data) - 1]
    outcomes = _try_cuts(shell, data, cuts, tmp_path)
    assert len(outcomes) == len(cuts)
    _check(outcomes, data)


def test_a_byte_more_is_refused_and_the_whole_file_is_not(shell: Shell, tmp_path: Path) -> None:
    data = build_sh(build_tar())
    longer = tmp_path / "longer.sh"
    longer.write_bytes(data + b"\n")
    whole = tmp_path / "whole.sh"
    whole.write_bytes(data)
    env = {**os.environ, "PATH": shell.path}
    run = [*shell.argv]
    done = subprocess.run([*run, str(longer), "--info"], capture_output=True, text=True, env=env)
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines() == [
        f"error: {longer} is truncated or damaged: it is not {len(data)} bytes long",
        HINT,
    ]
    done = subprocess.run([*run, str(whole), "--info"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "format=1" in done.stdout

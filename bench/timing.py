"""Wall time and peak RSS of one command, measured by bench/ptime.c (host and rootfs)."""

from __future__ import annotations

import statistics
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.config import cache_root

PTIME_SOURCE = Path(__file__).resolve().parent / "ptime.c"


@dataclass(frozen=True)
class Sample:
    """One run: wall seconds, peak RSS (KiB) of the largest process of its tree, exit code,
    and CPU seconds (user + system, the whole tree)."""

    wall: float
    rss_kib: int
    code: int
    cpu: float = 0.0


def parse_line(line: str) -> tuple[str, Sample]:
    """One line of ptime's results file."""
    label, wall, rss, code, cpu = line.split()
    return label, Sample(float(wall), int(rss), int(code), float(cpu))


def ptime_binary() -> Path:
    """bench/ptime.c built static (the rootfs has no python and maybe another glibc)."""
    binary = cache_root() / "ptime"
    if not binary.exists() or binary.stat().st_mtime < PTIME_SOURCE.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-static", "-o", str(binary), str(PTIME_SOURCE)], check=True)
    return binary


def run_timed(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
) -> Sample:
    """Run argv under ptime: a small static parent, so the peak RSS is the command's own.

    (A child forked from this Python process would inherit its ~70 MB resident set until
    exec, and Linux keeps that in ru_maxrss.)
    """
    with tempfile.NamedTemporaryFile("r", prefix="ptime-", suffix=".txt") as result:
        out = log.open("ab") if log is not None else None
        try:
            subprocess.run(
                [str(ptime_binary()), result.name, "run", *argv],
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdout=out if out is not None else subprocess.DEVNULL,
                stderr=out if out is not None else subprocess.DEVNULL,
                check=False,
            )
        finally:
            if out is not None:
                out.close()
        text = result.read().strip()
    if not text:
        return Sample(0.0, 0, 127)
    return parse_line(text)[1]


def median(values: Sequence[float]) -> float:
    """The median (the suite's figure for every repeated timing)."""
    return float(statistics.median(values))

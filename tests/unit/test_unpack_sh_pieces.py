"""The sh unpacker's parallel decompression: a gzip payload cut where the meta's payload_cuts
say, each piece on a core of its own, the tar stream put back together in order."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.unpacksh import (
    Env,
    Unpacker,
    assert_relocated,
    build_cut_tar,
    build_tar,
    cut_payload,
    tree,
)

# Text that compresses but not to nothing, so that every piece of the payload is a real member.
DATA = b"".join(
    b"line %06d of the data file, %s\n" % (i, os.urandom(8).hex().encode()) for i in range(6000)
)
ENV = Env(data=DATA)


def counting(up: Unpacker, real: str) -> tuple[Path, Path]:
    """A folder with a `gzip` that logs each run to a file, then runs the real one."""
    found = shutil.which(real, path=up.env()["PATH"])
    assert found is not None
    folder = up.tmp / "counting"
    folder.mkdir(exist_ok=True)
    log = up.tmp / "gzip.log"
    script = folder / "gzip"
    script.write_text(f'#!/bin/sh\necho run >>"{log}"\nexec "{found}" "$@"\n')
    script.chmod(0o755)
    return folder, log


def runs(up: Unpacker, log: Path) -> int | None:
    """How many gzip ran; None under busybox sh, which runs its own gzip applet whatever PATH
    says (the trees are still compared there)."""
    if up.shell.name == "busybox":
        return None
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.parametrize(("jobs", "used"), [("1", 1), ("2", 2), ("3", 3), ("8", 6)])
def test_pieces_give_the_same_environment(up: Unpacker, jobs: str, used: int) -> None:
    """Six pieces offered: N cores take N of them (all six at most); the tree is the same."""
    folder, log = counting(up, "gzip")
    out = up.tmp / "out"
    res = up.run(up.write(build_cut_tar(ENV, 6)), "-o", str(out), "-j", jobs, path_first=folder)
    assert res.code == 0, res.stderr
    assert runs(up, log) in (used, None)
    assert_relocated(out / "env", DATA)
    assert sorted(p.name for p in out.iterdir()) == ["env"], "no piece, slot or lock is left"
    single = up.tmp / "single"
    assert up.unpack(build_tar(ENV), "-o", str(single)).code == 0
    assert tree(out / "env").keys() == tree(single / "env").keys()


def test_all_cores_by_default(up: Unpacker) -> None:
    folder, log = counting(up, "gzip")
    res = up.run(up.write(build_cut_tar(ENV, 6)), "-o", str(up.tmp / "out"), path_first=folder)
    assert res.code == 0, res.stderr
    assert runs(up, log) in (min(len(os.sched_getaffinity(0)), 6), None)


def test_one_stream_when_the_pieces_would_not_fit(up: Unpacker) -> None:
    """df says there is room for the environment but not for the pieces beside it."""
    folder, log = counting(up, "gzip")
    (folder / "df").write_text(
        "#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
        "echo 'fake 1000 900 100 90% /'\n"
    )
    (folder / "df").chmod(0o755)
    archive = build_cut_tar(ENV, 6, {"unpacked_kib": "64"})
    res = up.run(up.write(archive), "-o", str(up.tmp / "out"), "-j", "4", path_first=folder)
    assert res.code == 0, res.stderr
    assert runs(up, log) in (1, None)
    assert_relocated(up.tmp / "out" / "env", DATA)


@pytest.mark.parametrize("jobs", ["1", "4"])
@pytest.mark.parametrize(
    "cuts",
    [
        pytest.param("{a} {b} {size}", id="not-increasing"),
        pytest.param("{b} {size}x", id="not-a-number"),
        pytest.param("{b} 1:1", id="end-is-not-the-payload-size"),
        pytest.param("0:0 {size}", id="cut-at-zero"),
        pytest.param("{b}:1 {size}", id="three-fields"),
    ],
)
def test_damaged_cuts_are_refused_before_writing(up: Unpacker, cuts: str, jobs: str) -> None:
    payload, good = cut_payload(ENV, 3)
    first, second, end = good.split()
    bad = cuts.format(a=second, b=first, size=end)
    archive = build_tar(ENV, {"payload_cuts": bad}, payload)
    res = up.unpack(archive, "-o", str(up.tmp / "out"), "-j", jobs)
    assert res.code == 3, res.stderr
    assert res.first.endswith("has a damaged meta block (payload_cuts)") or res.first.endswith(
        "has a damaged meta block"
    ), res.stderr
    assert not (up.tmp / "out").exists()


def test_a_cut_inside_a_member_fails_and_leaves_nothing(up: Unpacker) -> None:
    payload, good = cut_payload(ENV, 2)
    (first, end) = good.split()
    packed, unpacked = first.split(":")
    moved = f"{int(packed) - 7}:{unpacked} {end}"  # a valid list, but not a member's start
    archive = build_tar(ENV, {"payload_cuts": moved}, payload)
    out = up.tmp / "out"
    res = up.unpack(archive, "-o", str(out), "-j", "2")
    assert res.code == 8, res.stderr
    assert "error: extracting into" in res.stderr and "failed (gzip exit" in res.stderr
    assert not out.exists(), "the folder made for the environment is removed again"


@pytest.mark.parametrize("value", ["0", "x", "-1", ""])
def test_jobs_needs_a_positive_number(up: Unpacker, value: str) -> None:
    res = up.unpack(build_cut_tar(ENV, 2), "-o", str(up.tmp / "out"), f"--jobs={value}")
    assert res.code == 2
    assert res.first == "error: --jobs needs a number of cores (1 or more)"
    assert not (up.tmp / "out").exists()

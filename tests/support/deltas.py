"""Archives and updates for the delta tests: three conda environments that differ by a package
each, two --python environments that differ by one local wheel, and the updates between them.

A: python + hello-py; B: A + greet (a C program with a compiled-in prefix); C: B + libbar and
libfoo (the core project). P1 and P2: a CPython with the wheel tiny 1.0, then 1.1 (PyPI-only
change; the wheels are local, so nothing is downloaded).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from tests.conftest import portenv
from tests.support.channel import write_project
from tests.support.pypilock import make_wheel

__all__ = ["CONDA", "conda_updates", "python_updates", "snapshot"]

CONDA = {
    "A": ["python 3.12.*", "hello-py"],
    "B": ["python 3.12.*", "greet", "hello-py"],
    "C": ["python 3.12.*", "greet", "libbar", "hello-py"],
}


def conda_updates(dist: Path, channel: Path, cache: Path) -> Path:
    """/dist: A.sh B.sh C.sh, B.tar, the updates AB.sh AB.tar BC.sh, portenv-unpack."""
    for name, specs in CONDA.items():
        project = write_project(dist.parent / f"project-{name}", channel, specs)
        portenv("pack", project, "-o", dist / f"{name}.sh", "--use-cache", cache, "-q")
    portenv("delta", dist / "A.sh", dist / "B.sh", "-o", dist / "AB.sh", "-q")
    portenv("delta", dist / "A.sh", dist / "B.sh", "-o", dist / "AB.tar", "-q")
    portenv("delta", dist / "B.sh", dist / "C.sh", "-o", dist / "BC.sh", "-q")
    portenv("unpacker", "-o", dist / "portenv-unpack")
    return dist


def python_updates(dist: Path, python: Path, cache: Path) -> Path:
    """/dist: P1.sh (tiny 1.0), P2.sh (tiny 1.1) and P12.sh, the update between them;
    P12-pack.sh is the same update made by `pack --delta-from`."""
    for index, version in ((1, "1.0"), (2, "1.1")):
        wheels = dist / f"wheels-{version}"
        wheels.mkdir()
        wheel = make_wheel(
            wheels, "tiny", version, files={"tiny.py": f"VALUE = 'tiny {version}'\n"}
        )
        requirements = dist / f"requirements-{index}.txt"
        requirements.write_text(f"{wheel}\n")
        portenv(
            "pack",
            "--python",
            python,
            "-r",
            requirements,
            "-o",
            dist / f"P{index}.sh",
            "--use-cache",
            cache,
            "-q",
        )
    portenv("delta", dist / "P1.sh", dist / "P2.sh", "-o", dist / "P12.sh", "-q")
    portenv(
        "pack",
        "--python",
        python,
        "-r",
        dist / "requirements-2.txt",
        "--delta-from",
        dist / "P1.sh",
        "-o",
        dist / "P12-pack.sh",
        "--use-cache",
        cache,
        "-q",
    )
    return dist


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under `root`: kind, mode, symlink target, content digest.

    A timestamp-based .pyc (PEP 552 flags 0) was written on the target by a python that found
    the packed one stale: its bytes differ from run to run (marshal's refcount-dependent
    flags), so only its kind is recorded. Every .pyc portenv packs or relocation writes is a
    checked-hash one; a pack that ships a timestamp .pyc has one rewritten on every target.
    """
    out: dict[str, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            full = Path(folder, name)
            st = full.lstat()
            key = str(full.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[key] = ("l", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[key] = ("d", st.st_mode & 0o7777)
            else:
                data = full.read_bytes()
                stale = name.endswith(".pyc") and data[4:8] == b"\0\0\0\0"
                digest = "timestamp pyc" if stale else hashlib.sha256(data).hexdigest()
                out[key] = ("f", st.st_mode & 0o7777, digest)
    return out

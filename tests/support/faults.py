"""Host side of the fault campaign (tests/e2e/test_faults.py).

The drivers run inside a bare rootfs with tests/support/faults.sh (their sh library) and
fault-shim.sh mounted at /faults, the archives at /dist, and three tmpfs mounts: /srv (the
destinations), /h (the drivers' scratch files) and whatever a case adds. Nothing a driver or an
unpacker does may reach the rootfs itself, so `run_driver` requires an empty overlay diff:
zero files written outside the destinations. This module also reads the payload of env.tar,
to prove that the env a driver took as its reference is the complete, relocated archive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import re
import shutil
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import zstandard

from tests.support.rootfs import RootfsResult, run_in_rootfs

__all__ = [
    "SHIMMED",
    "Member",
    "Payload",
    "check_reference",
    "facts",
    "make_kit",
    "points",
    "run_driver",
    "spread",
]

SUPPORT = Path(__file__).resolve().parent
SHIMMED = ("mv", "mkdir", "find", "rm", "tar")
"""Commands the unpacker finds on PATH that fault-shim.sh can stand in for (not under busybox
sh: its ash runs its own applets before looking at PATH)."""
LEFTOVER = re.compile(r"\.portenv-(lock|tmp|old)\.env(\.\d+)?")


def make_kit(folder: Path) -> Path:
    """The folder mounted at /faults: the sh library, the shim and a link per shimmed command."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SUPPORT / "faults.sh", folder / "faults.sh")
    shim = folder / "fault-shim.sh"
    shutil.copy(SUPPORT / "fault-shim.sh", shim)
    shim.chmod(0o755)
    (folder / "shim").mkdir(exist_ok=True)
    for command in SHIMMED:
        (folder / "shim" / command).symlink_to("../fault-shim.sh")
    return folder


def run_driver(
    root: Path,
    dist: Path,
    kit: Path,
    script: str,
    *,
    tmpfs: Sequence[tuple[str, str]] = (),
    top: Mapping[str, str] = MappingProxyType({"/srv": "app"}),
    timeout: float = 300,
) -> RootfsResult:
    """Run a driver (sh lines, faults.sh sourced) and require that it wrote nothing to the rootfs.

    The overlay diff `changed_all` covers every path of the rootfs, /tmp included: the tmpfs
    mounts hold all that the unpackers and the driver write, so any entry is a stray write.
    On the tmpfs mounts, `top` names what each must hold at the end, comma separated ("-" for
    nothing): the -o folders and what the driver made, no stray file beside them.
    """
    tops = "".join(f'echo "top {path}=$(entries {path})"\n' for path in top)
    result = run_in_rootfs(
        root,
        ["/bin/sh", "-c", f". /faults/faults.sh\n{script}\n{tops}"],
        binds=[(dist, "/dist"), (kit, "/faults")],
        tmpfs=[("/h", "16m"), ("/srv", "400m"), *tmpfs],
        timeout=timeout,
    )
    assert result.returncode == 0, f"driver failed:\n{result.stdout}\n{result.stderr}"
    assert result.changed_all == [], f"written outside the destinations: {result.changed_all}"
    found = [line for line in result.stdout.splitlines() if line.startswith("top ")]
    assert found == [f"top {path}={entries}" for path, entries in top.items()], result.stdout
    return result


def facts(line: str) -> dict[str, str]:
    """The `key=value` words of one driver line."""
    return dict(word.split("=", 1) for word in line.split() if "=" in word)


def points(stdout: str) -> list[dict[str, str]]:
    """One dict per `point N POINT k=v...` line of a campaign, with "n" and "at" added."""
    found = []
    for line in stdout.splitlines():
        if line.startswith("point "):
            _, n, at, _rest = line.split(" ", 3)
            found.append({"n": n, "at": at, **facts(line)})
    return found


def leftovers(entries: str) -> list[str]:
    """The entries of the -o folder that are not the env, with pids replaced by PID."""
    names = [] if entries == "-" else entries.split(",")
    return [re.sub(r"\.\d+$", ".PID", n) for n in names if n != "env"]


def unknown_leftovers(entries: str) -> list[str]:
    """Entries of the -o folder that are neither the env nor an unpacker's own temporary."""
    names = [] if entries == "-" else entries.split(",")
    return [n for n in names if n != "env" and not LEFTOVER.fullmatch(n)]


def spread(count: int, seed: int) -> list[int]:
    """`count` kill points in per mille of a run, one drawn at random in each equal slice."""
    rng = random.Random(seed)
    return [int((i + rng.random()) * 1000 / count) for i in range(count)]


@dataclass(frozen=True)
class Member:
    """One entry of the payload, in the terms of faults.sh `listing`."""

    kind: str  # "regular file", "directory", "symbolic link"
    mode: str  # octal permission bits, as stat %a prints them
    size: int
    md5: str
    link: str


def payload_tar_of(env_tar: Path) -> bytes:
    """The uncompressed tar of an env.tar's payload, whichever codec it was packed with."""
    with tarfile.open(env_tar) as outer:
        info = outer.getmembers()[1]
        member = outer.extractfile(info)
        assert member is not None
        raw = member.read()
    if info.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    return gzip.decompress(raw)


@dataclass(frozen=True)
class Payload:
    """The entries of an archive's payload and the files relocation rewrites."""

    members: dict[str, Member]
    relocated: frozenset[str]

    @classmethod
    def from_tar(cls, env_tar: Path) -> Payload:
        members: dict[str, Member] = {}
        manifest: dict[str, list[dict[str, str]]] = {}
        with tarfile.open(fileobj=io.BytesIO(payload_tar_of(env_tar)), mode="r:") as inner:
            for info in inner:
                data = b""
                if info.isfile():
                    stream = inner.extractfile(info)
                    assert stream is not None
                    data = stream.read()
                if info.name == ".portenv/manifest.json":
                    manifest = json.loads(data)
                kind = {tarfile.DIRTYPE: "directory", tarfile.SYMTYPE: "symbolic link"}.get(
                    info.type, "regular file" if info.isfile() else f"type {info.type!r}"
                )
                members[f"./{info.name}"] = Member(
                    kind,
                    f"{info.mode & 0o7777:o}",
                    len(data),
                    hashlib.md5(data).hexdigest(),
                    info.linkname,
                )
        relocated = frozenset(  # the manifest itself records where the env was relocated to
            [f"./{entry['path']}" for entry in manifest["files"]] + ["./.portenv/manifest.json"]
        )
        return cls(members, relocated)


def compiled_by_relocation(payload: Payload, paths: set[str]) -> set[str]:
    """Of `paths`, the bytecode the relocation compiles for the sources it rewrote (they ship
    without any), and the __pycache__ folders that hold it."""
    found: set[str] = set()
    for path in paths:
        folder, _, name = path.rpartition("/")
        if name == "__pycache__" and any(
            r.startswith(folder + "/") and r.endswith(".py") for r in payload.relocated
        ):
            found.add(path)
        elif folder.endswith("/__pycache__") and name.endswith(".pyc"):
            source = f"{folder.removesuffix('/__pycache__')}/{name.split('.', 1)[0]}.py"
            if source in payload.relocated:
                found.add(path)
    return found


def check_reference(stdout: str, payload: Payload, dest: str) -> int:
    """The reference env holds exactly the payload, relocated to `dest`; returns its entry count.

    Every path, type and mode matches the payload; every file that relocation does not touch
    has the payload's size and md5; every symlink its target; the manifest names `dest`; the
    env's python and its compiled-in-prefix program ran.
    """
    listed: dict[str, dict[str, str]] = {}
    for line in stdout.splitlines():
        if line.startswith("reference ./"):
            path, key, value = line[len("reference ") :].split("|", 2)
            listed.setdefault(path, {})[key.replace("regular empty file", "regular file")] = value
    extra = set(listed) - set(payload.members)
    assert set(payload.members) <= set(listed), "the reference env is not the payload"
    assert extra <= compiled_by_relocation(payload, extra), sorted(extra)
    for path, member in payload.members.items():
        got = listed[path]
        assert got.get(member.kind) == member.mode, (path, got, member)
        if member.kind == "symbolic link":
            assert got["link"].endswith(f" -> '{member.link}'"), (path, got, member)
        if member.kind == "regular file" and path not in payload.relocated:
            assert (got["size"], got["md5"]) == (str(member.size), member.md5), (path, got)
    assert f"manifest-prefix {dest}" in stdout.splitlines()
    assert f"runs python ok {dest}" in stdout.splitlines()
    assert "runs hello from greet" in stdout.splitlines()
    return len(listed)

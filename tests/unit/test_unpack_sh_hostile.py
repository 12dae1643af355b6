"""Hostile archives against the sh unpacker: nothing lands outside the destination.

Each case is a well-formed portenv archive (its meta and sha256 agree with its payload) whose
payload adds a member that a portenv payload never holds (docs/format.md, "The payload"). The
unpacker must refuse it with exit 3 before the environment's interpreter runs or anything is
renamed into place, under dash, bash and busybox (whose tar is weaker: it follows hard links
out of the extraction folder), for env.tar and env.sh alike. A victim folder beside the
destination proves that nothing outside was written or linked.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.hardening import record
from tests.support.unpacksh import (
    Env,
    Result,
    Unpacker,
    _payload_tar,
    assert_relocated,
    build_tar,
    cut_gzip,
    tree,
)

Member = tuple[tarfile.TarInfo, bytes | None]


def _info(
    name: str, kind: bytes = tarfile.REGTYPE, *, link: str = "", mode: int = 0o644
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def file(name: str, data: bytes = b"x", mode: int = 0o644) -> Member:
    return _info(name, mode=mode), data


def symlink(name: str, target: str) -> Member:
    return _info(name, tarfile.SYMTYPE, link=target, mode=0o777), None


def hardlink(name: str, target: str) -> Member:
    return _info(name, tarfile.LNKTYPE, link=target), None


def special(name: str, kind: bytes, mode: int = 0o644) -> Member:
    info = _info(name, kind, mode=mode)
    info.devmajor, info.devminor = 1, 3
    return info, None


def raw_payload_with(extra: list[Member]) -> bytes:
    """The fake environment's payload tar with `extra` members appended."""
    raw, _ = _payload_tar(Env())
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(raw)) as base,
        tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for member in base.getmembers():
            data = base.extractfile(member) if member.isfile() else None
            tar.addfile(member, data)
        for info, content in extra:
            if content is not None:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return out.getvalue()


def payload_with(extra: list[Member]) -> bytes:
    """The same, gzip-compressed as a portenv payload."""
    return gzip.compress(raw_payload_with(extra), mtime=0)


# name -> (members, what the error line says); VICTIM stands for the victim folder's path
CASES: dict[str, tuple[list[Member], str]] = {
    "absolute-path": ([file("VICTIM/planted")], "a member outside the environment"),
    "dotdot-path": ([file("share/../../../victim/planted")], "a member outside the environment"),
    "symlink-absolute": ([symlink("share/out", "VICTIM")], "a symlink that leads outside"),
    "symlink-dotdot": ([symlink("share/out", "../../../victim")], "a symlink that leads outside"),
    "symlink-then-write": (
        [symlink("share/out", "../../../victim"), file("share/out/planted")],
        "",  # GNU tar stops at the write through the link, busybox writes a folder: refused
    ),
    "symlink-chain": (
        [symlink("share/up", ".."), symlink("share/esc", "up/../../victim")],
        "a symlink that leads outside",
    ),
    "non-ascii-chain": (  # some ls print both é and ?? as '??': links are then read exactly
        [
            special("share/\u00e9", tarfile.DIRTYPE, 0o755),
            symlink("share/??", "a/b/c/d"),
            symlink("share/esc", "\u00e9/../../../../victim"),
        ],
        "a symlink that leads outside",
    ),
    "hardlink-absolute": ([hardlink("share/hl", "VICTIM/secret")], ""),
    "hardlink-dotdot": ([hardlink("share/hl", "../../victim/secret")], ""),
    "hardlink-inside": ([hardlink("share/hl", "share/data.txt")], "a hard link"),
    "char-device": ([special("share/null", tarfile.CHRTYPE)], "a device file"),
    "block-device": ([special("share/disk", tarfile.BLKTYPE)], "a device file"),
    "fifo": ([special("share/pipe", tarfile.FIFOTYPE)], "a fifo or socket"),
    "setuid": ([file("bin/su", mode=0o4755)], "a setuid, setgid or sticky mode"),
    "setgid": ([file("bin/sg", mode=0o2755)], "a setuid, setgid or sticky mode"),
    "sticky-folder": ([special("share/tmp", tarfile.DIRTYPE, 0o1777)], "a setuid, setgid"),
    "duplicate": ([file("share/data.txt", b"second")], "the member share/data.txt twice"),
    "duplicate-dot-slash": ([file("./share/data.txt", b"second")], "twice"),
    "arrow-in-name": (
        [symlink("share/x -> y", "/etc")],
        "a member name with a newline or ' -> '",
    ),
    "newline-in-name": ([file("share/a\nb")], ""),
}


TAR_FAILS_FIRST = {"symlink-then-write"}
"""Cases where busybox tar fails before the checks run (exit 8, still refused, still inside)."""


def _resolve(members: list[Member], victim: Path) -> list[Member]:
    resolved: list[Member] = []
    for info, data in members:
        clone = info.replace(
            name=info.name.replace("VICTIM", str(victim)),
            linkname=info.linkname.replace("VICTIM", str(victim)),
        )
        resolved.append((clone, data))
    return resolved


def _victim(root: Path) -> Path:
    victim = root / "victim"
    victim.mkdir()
    (victim / "secret").write_text("do not touch\n")
    return victim


def _assert_untouched(victim: Path, before: dict[str, str]) -> None:
    assert tree(victim) == before
    assert (victim / "secret").stat().st_nlink == 1  # no hard link was left to it


@pytest.mark.hardening
@pytest.mark.parametrize("pieces", [1, 3], ids=["one-stream", "3-pieces"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_member_is_refused(up: Unpacker, case: str, pieces: int) -> None:
    """Refused alike when the payload is decompressed in pieces (tar still reads one stream)."""
    members, says = CASES[case]
    victim = _victim(up.tmp)
    before = tree(victim)
    raw = raw_payload_with(_resolve(members, victim))
    if pieces == 1:
        archive = build_tar(payload=gzip.compress(raw, mtime=0))
    else:
        payload, cuts = cut_gzip(raw, pieces)
        archive = build_tar(meta={"payload_cuts": cuts}, payload=payload)
    out = up.tmp / "out"
    res = up.unpack(archive, "-o", str(out), "-j", str(pieces))
    error = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    if res.code == 8 and case in TAR_FAILS_FIRST:
        # busybox tar cannot make the link over the folder it made: the extraction fails
        assert len(error) == 1, res.stderr
        assert error[0].startswith(f"error: extracting into {out}/.portenv-tmp.env."), res.stderr
    else:
        assert res.code == 3, res.stderr
        assert res.first.startswith(f"error: {up.tmp / 'env'}."), res.stderr
        assert " holds " in res.first and says in res.first, res.first
        assert res.stderr.splitlines()[1].startswith("  hint: it was not made by portenv")
    assert not out.exists(), tree(out)  # the folder made for -o is gone again
    _assert_untouched(victim, before)
    record(
        "hostile archive",
        f"{case} ({up.shell.name}, env.{up.shape}, {pieces} piece{'s' if pieces > 1 else ''})",
        f"refused, exit {res.code}",
        outside_writes=0,
    )


def test_hostile_member_leaves_existing_env(up: Unpacker) -> None:
    out = up.tmp / "out"
    assert up.unpack(build_tar(), "-o", str(out)).code == 0
    before = tree(out)
    victim = _victim(up.tmp)
    members = [symlink("share/out", str(victim))]
    res = up.unpack(build_tar(payload=payload_with(members)), "-o", str(out), "--force")
    assert res.code == 3, res.stderr
    assert tree(out) == before


@pytest.mark.parametrize(
    "links",
    [
        [symlink("share/up", ".."), symlink("share/chain", "up/share/data.txt")],
        [symlink("lib/a", "b"), symlink("lib/b", "../share/./data.txt")],
        [symlink("share/self", "."), symlink("share/deep", "self/self/self/data.txt")],
        [symlink("share/dangling", "nothing/here")],
        [symlink("share/li\u00e9n", "data.txt"), symlink("share/what?", "li\u00e9n")],
    ],
    ids=["parent-chain", "link-to-link", "dot-chain", "dangling", "non-ascii"],
)
def test_links_that_stay_inside_are_accepted(up: Unpacker, links: list[Member]) -> None:
    extra = [special("lib", tarfile.DIRTYPE, 0o755), *links]
    res = up.unpack(build_tar(payload=payload_with(extra)), "-o", str(up.tmp / "out"))
    assert res.code == 0, res.stderr
    assert_relocated(up.tmp / "out" / "env")


# --------------------------------------------------------------------------- zstd payloads


def _zstd(data: bytes) -> bytes:
    zstd = shutil.which("zstd")
    if zstd is None:
        pytest.fail("zstd is not installed: run scripts/install-system-deps.sh --tests")
    done = subprocess.run([zstd, "-q", "-c"], input=data, capture_output=True, check=True)
    return done.stdout


PACKAGES = b"conda python 3.12.1 h0\npypi idna 3.10\n"


def zstd_tar() -> bytes:
    """A zstd-compressed archive: meta `compression=zstd`, member `portenv/payload.tar.zst`."""
    raw = raw_payload_with([file(".portenv/packages.txt", PACKAGES)])
    archive = build_tar(meta={"compression": "zstd"}, payload=_zstd(raw))
    archive = archive.replace(b"portenv/payload.tar.gz\0", b"portenv/payload.tar.zst", 1)
    header = bytearray(archive[4608:5120])  # the renamed member needs its checksum again
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return archive[:4608] + bytes(header) + archive[5120:]


@pytest.fixture(scope="session")
def path_without_zstd(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """PATH of a shell with every host command but zstd (busybox applets come first)."""
    bindir = tmp_path_factory.mktemp("no-zstd-bin")
    for folder in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        for entry in Path(folder).glob("*") if Path(folder).is_dir() else ():
            if "zstd" not in entry.name and not (bindir / entry.name).exists():
                (bindir / entry.name).symlink_to(entry)

    def path_of(shell_path: str) -> str:
        first = shell_path.split(os.pathsep)[0]
        return f"{first}{os.pathsep}{bindir}" if "busybox" in first else str(bindir)

    return path_of


def test_zstd_payload_unpacks(up: Unpacker) -> None:
    res = up.unpack(zstd_tar(), "-o", str(up.tmp / "out"))
    assert res.code == 0, res.stderr
    assert_relocated(up.tmp / "out" / "env")


def test_zstd_list(up: Unpacker) -> None:
    res = up.unpack(zstd_tar(), "--list")
    assert res.code == 0, res.stderr
    assert res.stdout.encode() == PACKAGES


def test_gzip_payload_named_zst_is_refused(up: Unpacker) -> None:
    archive = zstd_tar().replace(b"compression=zstd", b"compression=gzip", 1)
    res = up.unpack(archive, "-o", str(up.tmp / "out"))
    assert res.code == 3
    assert res.first.endswith("has no gzip payload where format 1 puts it"), res.stderr


def test_zstd_without_zstd_is_refused_before_writing(
    up: Unpacker, path_without_zstd: Callable[[str], str]
) -> None:
    file = up.write(zstd_tar())
    proc = subprocess.run(
        [*up.argv(file), "-o", str(up.tmp / "out")],
        capture_output=True,
        text=True,
        env=up.env(PATH=path_without_zstd(up.shell.path)),
        check=False,
    )
    res = Result(proc.returncode, proc.stdout, proc.stderr)
    assert res.code == 4, res.stderr
    assert res.first == f"error: {file} holds a zstd payload and this machine has no zstd command"
    assert not (up.tmp / "out").exists()

"""One table of good and hostile archives through both unpackers: the same exit code
(format.Exit), and a refusal leaves the destination's parent exactly as it was.

The archives are written by portenv's own writers around the fake environment of
test_unpack_py, then changed where a case says: a meta value, the payload, the file's length,
the destination. The sh unpacker runs as the standalone portenv-unpack (under dash and
busybox), the Python one as ``portenv unpack``.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from portenv.cli import main
from portenv.format import META_KEYS, META_SIZE, PAYLOAD_OFFSET, Exit, meta_problem
from portenv.write.container import unzstd_offset
from tests.support.unpacksh import OTHER_ARCH, Shell, Unpacker
from tests.unit.test_unpack_py import _link, _member, env_tree, hostile, payload_of, write_archive

Payload = Callable[[Path], tuple[bytes, int]]


def _good(tmp: Path) -> tuple[bytes, int]:
    return payload_of(env_tree(tmp / "tree"))


def _zstd(tmp: Path) -> tuple[bytes, int]:
    return payload_of(env_tree(tmp / "tree"), "zstd")


def _hostile(*members: tarfile.TarInfo) -> Payload:
    return lambda tmp: hostile(*members)


@dataclass(frozen=True)
class Case:
    expected: Exit
    meta: dict[str, str] = field(default_factory=dict)
    """Meta values replaced in the written block (same key, new value)."""
    payload: Payload = _good
    args: tuple[str, ...] = ()
    existing: str | None = None
    """A file made at DEST/NAME/`existing` before the unpack."""
    cut: int = 0
    """The file ends this many bytes before its payload's end (0: whole; -1: inside the
    decompressor a zstd archive carries)."""
    compression: str = "gzip"
    """zstd: the archive carries its decompressor (the default archive)."""


CASES = {
    "good": Case(Exit.OK),
    "good-force-over-env": Case(Exit.OK, args=("--force",), existing=".portenv/x"),
    "good-force-over-conda-env": Case(Exit.OK, args=("--force",), existing="conda-meta/x"),
    "format-2": Case(Exit.ARCHIVE, {"format": "2"}),
    "compression-unknown": Case(Exit.ARCHIVE, {"compression": "lz4"}),
    "number-leading-zero": Case(Exit.ARCHIVE, {"unpacked_kib": "064"}),
    "number-not-a-number": Case(Exit.ARCHIVE, {"files": "x"}),
    "sha256-not-hex": Case(Exit.ARCHIVE, {"payload_sha256": "z" * 64}),
    "glibc-floor-bad": Case(Exit.ARCHIVE, {"glibc_floor": "2..17"}),
    "python-absolute": Case(Exit.ARCHIVE, {"python": "/bin/sh"}),
    "python-climbs": Case(Exit.ARCHIVE, {"python": "bin/../../x"}),
    "cuts-bad": Case(Exit.ARCHIVE, {"payload_cuts": "1:x"}),
    "truncated": Case(Exit.ARCHIVE, cut=100),
    "payload-size-bad": Case(Exit.ARCHIVE, {"payload_size": "1e3"}),
    "prefix-max-bad": Case(Exit.ARCHIVE, {"prefix_max": "-1"}),
    "hostile-dotdot": Case(Exit.ARCHIVE, payload=_hostile(_member("../evil"))),
    "hostile-absolute-link": Case(Exit.ARCHIVE, payload=_hostile(_link("etc/root", "/"))),
    "hostile-link-out": Case(Exit.ARCHIVE, payload=_hostile(_link("etc/up", "../../.."))),
    "hostile-setuid": Case(Exit.ARCHIVE, payload=_hostile(_member("bin/su", mode=0o4755))),
    "hostile-fifo": Case(Exit.ARCHIVE, payload=_hostile(_member("etc/p", tarfile.FIFOTYPE))),
    "other-arch": Case(Exit.TARGET, {"arch": OTHER_ARCH}),
    "musl": Case(Exit.TARGET, {"libc": "musl"}),
    "glibc-too-old": Case(Exit.TARGET, {"glibc_floor": "99.0"}),
    "prefix-too-long": Case(Exit.DESTINATION, {"prefix_max": "12"}),
    "exists": Case(Exit.DESTINATION, existing="x"),
    "force-over-a-folder": Case(Exit.DESTINATION, args=("--force",), existing="x"),
    "name-dotdot": Case(Exit.DESTINATION, args=("--env-name", "..")),
    "name-option": Case(Exit.DESTINATION, args=("--env-name", "-x")),
    "name-slash": Case(Exit.DESTINATION, args=("--env-name", "a/b")),
    "no-space": Case(Exit.DISK, {"unpacked_kib": str(2**50)}),
    "sha256-wrong": Case(Exit.INTEGRITY, {"payload_sha256": "0" * 64}),
    "zstd-good": Case(Exit.OK, payload=_zstd, compression="zstd"),
    "zstd-hostile-dotdot": Case(
        Exit.ARCHIVE, payload=lambda tmp: hostile(_member("../evil"), zstd=True), compression="zstd"
    ),
    "unzstd-size-bad": Case(Exit.ARCHIVE, {"unzstd_size": "x"}, _zstd, compression="zstd"),
    "unzstd-sha256-not-hex": Case(
        Exit.ARCHIVE, {"unzstd_sha256": "z" * 64}, _zstd, compression="zstd"
    ),
    "unzstd-with-gzip": Case(Exit.ARCHIVE, {"unzstd_size": "1", "unzstd_sha256": "0" * 64}),
    "unzstd-sha256-wrong": Case(
        Exit.INTEGRITY, {"unzstd_sha256": "0" * 64}, _zstd, compression="zstd"
    ),
    "unzstd-truncated": Case(Exit.ARCHIVE, payload=_zstd, compression="zstd", cut=-1),
}


def _set_meta(data: bytes, changes: dict[str, str]) -> bytes:
    """The archive with `changes` made in (or added to) its meta block, kept 4096 bytes."""
    block = data[512 : 512 + META_SIZE]
    lines = block.rstrip(b"\n").split(b"\n")
    for key, value in changes.items():
        line = f"{key}={value}".encode()
        at = [i for i, old in enumerate(lines) if old.startswith(key.encode() + b"=")]
        if at:
            lines[at[0]] = line
        else:
            lines.append(line)
    text = b"\n".join(lines) + b"\n"
    assert len(text) <= META_SIZE
    return data[:512] + text.ljust(META_SIZE, b"\n") + data[512 + META_SIZE :]


def _archive(case: Case, tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    payload, files = case.payload(tmp)
    path = write_archive(tmp / "env.tar", payload, files, compression=case.compression)
    data = path.read_bytes()
    if case.meta:
        data = _set_meta(data, case.meta)
    if case.cut > 0:
        data = data[: PAYLOAD_OFFSET + len(payload) - case.cut]
    elif case.cut < 0:  # inside the decompressor, after the payload
        data = data[: unzstd_offset(len(payload)) + 100]
    path.write_bytes(data)
    return path


def _prepare(case: Case, out: Path) -> None:
    if case.existing is not None:
        made = out / "env" / case.existing
        made.parent.mkdir(parents=True)
        made.write_text("there before\n")


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() and not p.is_symlink() else None
        for p in sorted(root.rglob("*"))
    }


def _python_unpack(archive: Path, out: Path, args: tuple[str, ...]) -> int:
    return main(["unpack", str(archive), "-o", str(out), *args])


@pytest.mark.parametrize("shell", ["dash", "busybox"], indirect=True)
@pytest.mark.parametrize("name", list(CASES))
def test_both_unpackers_agree(
    name: str, shell: Shell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    archive = _archive(case, tmp_path / "build")
    results: dict[str, int] = {}
    for side in ("sh", "python"):
        root = tmp_path / side
        out = root / "out"
        root.mkdir()
        _prepare(case, out)
        before = _snapshot(root)
        if side == "sh":
            result = Unpacker(shell, "tar", root).run(archive, "-o", str(out), *case.args)
            results[side], stderr = result.code, result.stderr
        else:
            results[side] = _python_unpack(archive, out, case.args)
            stderr = capsys.readouterr().err
        if case.expected is Exit.OK:
            assert (out / "env" / "etc" / "conf").is_file(), stderr
            assert not (out / "env" / case.existing).exists() if case.existing else True
        else:
            assert stderr.startswith("error: "), stderr
            assert _snapshot(root) == before, f"{side} left something: {stderr}"
    assert results == {"sh": case.expected, "python": case.expected}


def test_the_cases_cover_every_code_and_every_validated_key(tmp_path: Path) -> None:
    """Each exit code of an unpack, and each key format.META_KEYS validates, has a case; the
    cases expected to be a damaged meta block are those format.meta_problem finds."""
    codes = {case.expected for case in CASES.values()}
    assert codes == set(Exit) - {Exit.FAILED, Exit.USAGE, Exit.EXTRACTION}
    good: dict[str, dict[str, str]] = {}
    for name in ("good", "zstd-good"):
        case = CASES[name]
        block = _archive(case, tmp_path / name).read_bytes()[512 : 512 + META_SIZE]
        meta = dict(line.split("=", 1) for line in block.decode().split("\n") if "=" in line)
        assert meta_problem(meta) is None
        good[case.compression] = meta
    damaged = {
        name: meta_problem({**good[case.compression], **case.meta})
        for name, case in CASES.items()
        if case.meta
    }
    validated = {key for key, pattern in META_KEYS.items() if pattern is not None}
    assert {key for key in damaged.values() if key} == validated - {"arch", "libc"}
    for name, key in damaged.items():
        assert (key is not None) == (
            CASES[name].expected is Exit.ARCHIVE
            and "format" not in name
            and "compression" not in name
        ), name


def test_meta_changes_keep_the_archive_readable(tmp_path: Path) -> None:
    """The case builder changes only what it is told: the good archive read back is the same."""
    archive = _archive(CASES["good"], tmp_path)
    again = _set_meta(archive.read_bytes(), {})
    assert again == archive.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(again)) as tar:
        assert tar.getnames()[0] == "portenv/meta"
    assert os.path.getsize(archive) % 512 == 0

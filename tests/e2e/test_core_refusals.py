"""On the target every failing check stops with one clear line and leaves nothing behind."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Archives
from tests.e2e.test_core import assert_only_under, run
from tests.support.rootfs import RootfsResult

pytestmark = pytest.mark.e2e

META = slice(512, 512 + 4096)
PAYLOAD_START = 5120


def tampered(archives: Archives, tmp_path: Path, change: Callable[[bytearray], None]) -> Archives:
    """A copy of the archives whose env.tar and env.sh went through `change`."""
    folder = tmp_path / "dist"
    folder.mkdir()
    shutil.copy(archives.unpacker, folder / "portenv-unpack")
    for name in ("env.tar", "env.sh"):
        data = bytearray((archives.folder / name).read_bytes())
        offset = len(data) - (archives.folder / "env.tar").stat().st_size
        view = bytearray(data[offset:])
        change(view)
        data[offset:] = view
        (folder / name).write_bytes(bytes(data))
    return Archives(folder, folder / "env.sh", folder / "env.tar", folder / "portenv-unpack")


def set_meta(key: str, value: str) -> Callable[[bytearray], None]:
    """Rewrite one key of the meta block, keeping it 4096 bytes."""

    def change(archive: bytearray) -> None:
        lines = bytes(archive[META]).decode().rstrip("\n").split("\n")
        lines = [f"{key}={value}" if line.startswith(f"{key}=") else line for line in lines]
        block = ("\n".join(lines) + "\n").encode()
        archive[META] = block + b"\n" * (4096 - len(block))

    return change


def flip_payload_byte(archive: bytearray) -> None:
    archive[PAYLOAD_START + 20000] ^= 0xFF


def refused(result: RootfsResult, code: int, words: str) -> str:
    """The unpack failed with `code`, and stderr's first line is an error naming `words`."""
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: "), result.stderr
    assert words in first, first
    assert "\n  hint: " in result.stderr
    return first


@pytest.mark.parametrize("mode", ["env.sh", "portenv-unpack"])
def test_wrong_architecture(
    core_archives: Archives, busybox_root: Path, tmp_path: Path, mode: str
) -> None:
    bad = tampered(core_archives, tmp_path, set_meta("arch", "aarch64"))
    line = (
        "sh /dist/env.sh -o /app"
        if mode == "env.sh"
        else "sh /dist/portenv-unpack /dist/env.tar -o /app"
    )
    result = run(busybox_root, bad, line)
    refused(result, 4, "aarch64")
    assert result.changed == []


def test_glibc_too_old(core_archives: Archives, bullseye_root: Path) -> None:
    result = run(bullseye_root, core_archives, "sh /dist/env.sh -o /app")
    first = refused(result, 4, "glibc")
    assert "2.31" in first and "2.36" in first
    assert result.changed == []


def test_truncated_file(core_archives: Archives, busybox_root: Path, tmp_path: Path) -> None:
    half = tmp_path / "dist"
    half.mkdir()
    data = core_archives.self_extracting.read_bytes()
    (half / "env.sh").write_bytes(data[: len(data) // 2])
    result = run(
        busybox_root,
        Archives(half, half / "env.sh", half / "env.tar", half / "x"),
        "sh /dist/env.sh -o /app",
    )
    refused(result, 3, "truncated")
    assert result.changed == []


@pytest.mark.parametrize("target", ["busybox", "trixie"])
def test_flipped_payload_byte(
    request: pytest.FixtureRequest, core_archives: Archives, tmp_path: Path, target: str
) -> None:
    bad = tampered(core_archives, tmp_path, flip_payload_byte)
    root = request.getfixturevalue(f"{target}_root")
    result = run(root, bad, "sh /dist/env.sh -o /app")
    refused(result, 7, "sha256")
    assert result.changed == []


def test_not_enough_disk(core_archives: Archives, busybox_root: Path) -> None:
    result = run(busybox_root, core_archives, "sh /dist/env.sh -o /small", tmpfs=[("/small", "8m")])
    refused(result, 6, "KiB free")
    assert result.changed == []


def test_disk_full_during_extraction_leaves_nothing(
    core_archives: Archives, busybox_root: Path, tmp_path: Path
) -> None:
    """The free-space check is fooled (meta claims 1 KiB): extraction itself must fail cleanly."""
    bad = tampered(core_archives, tmp_path, set_meta("unpacked_kib", "1"))
    result = run(
        busybox_root,
        bad,
        "mkdir /small/keep && echo kept > /small/keep/file",
        "sh /dist/env.sh -o /small || { echo exit=$?; ls -A /small; exit 0; }",
        tmpfs=[("/small", "8m")],
    )
    assert result.returncode == 0, result.stderr
    assert "exit=8" in result.stdout, result.stdout + result.stderr
    assert result.stdout.split("exit=8\n", 1)[1].split() == ["keep"], result.stdout


def test_existing_env_needs_force(core_archives: Archives, trixie_root: Path) -> None:
    result = run(
        trixie_root,
        core_archives,
        "sh /dist/env.sh -o /app",
        "echo mine > /app/env/marker",
        "if sh /dist/env.sh -o /app 2>/tmp/err; then echo UNEXPECTED; fi",
        "head -1 /tmp/err",
        "cat /app/env/marker",
        "sh /dist/env.sh -o /app --force",
        "test ! -e /app/env/marker && echo replaced",
        "/app/env/bin/greet",
        "ls -A /app",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert "UNEXPECTED" not in out
    assert out[0].startswith("error: ") and "/app/env" in out[0] and "exists" in out[0]
    assert out[1:] == ["mine", "replaced", "hello from greet", "env"]
    assert_only_under(result, ["/app"])

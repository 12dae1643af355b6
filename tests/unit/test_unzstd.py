"""The default archive's decompressor: portenv-unzstd as scripts/build-unzstd.sh builds it, the
member a zstd archive carries, and the sh unpacker running it on a target with no zstd."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from portenv.errors import InputError
from portenv.format import UNZSTD_NAME, UPDATE_KEYS, Exit
from portenv.write import unzstd as unzstd_module
from portenv.write.codecs import ZSTD_WINDOW_LOG
from portenv.write.container import UNZSTD_LICENCE_NAME
from portenv.write.unzstd import decompressor, licence
from tests.support.unpacksh import Result, Shell, Unpacker
from tests.unit.test_unpack_py import MACHINE, env_tree, payload_of, write_archive

BUILT = Path(unzstd_module.__file__).parents[1] / "target" / "unzstd"
RUNNERS = {"x86_64": (), "aarch64": ("qemu-aarch64-static",)}


def _runner(arch: str) -> tuple[str, ...]:
    """How to run an `arch` binary here (natively, or through qemu), or skip."""
    if arch == MACHINE:
        return ()
    runner = RUNNERS[arch]
    if not all(shutil.which(tool) for tool in runner):
        pytest.skip(f"no {' '.join(runner)} to run {arch} binaries")
    return runner


@pytest.mark.parametrize("arch", sorted(RUNNERS))
def test_the_built_decompressor_reads_zstd_and_refuses_damage(arch: str) -> None:
    binary = BUILT / arch / "portenv-unzstd"
    assert binary.is_file(), "run: sh scripts/build-unzstd.sh"
    run = [*_runner(arch), str(binary)]
    data = b"".join(i.to_bytes(4, "little") * 3 for i in range(400_000)) + bytes(range(256)) * 999
    params = zstandard.ZstdCompressionParameters.from_level(
        9, window_log=ZSTD_WINDOW_LOG, enable_ldm=True, write_checksum=True
    )
    frame = zstandard.ZstdCompressor(compression_params=params).compress(data)
    two = frame + zstandard.ZstdCompressor().compress(b"and a second frame")
    done = subprocess.run(run, input=two, capture_output=True, check=False, timeout=60)
    assert (done.returncode, done.stdout) == (0, data + b"and a second frame")
    for bad in (frame[: len(frame) // 2], b"not zstd", b"", frame[:-1] + bytes([frame[-1] ^ 1])):
        done = subprocess.run(run, input=bad, capture_output=True, check=False, timeout=60)
        assert done.returncode == 1, bad[:20]
        assert done.stderr.startswith(b"portenv-unzstd: ")
        assert done.stderr.count(b"\n") == 1


def test_the_decompressor_links_nothing() -> None:
    """No C library on the target is needed: a static ELF with no interpreter."""
    data = (BUILT / MACHINE / "portenv-unzstd").read_bytes()
    assert data[:4] == b"\x7fELF"
    assert b"ld-linux" not in data and b"libc.so" not in data
    assert "BSD" in licence()


def test_a_zstd_archive_carries_its_decompressor(tmp_path: Path) -> None:
    payload, files = payload_of(env_tree(tmp_path / "tree"), "zstd")
    archive = write_archive(tmp_path / "env.tar", payload, files, compression="zstd")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        member = tar.extractfile(UNZSTD_NAME)
        assert member is not None
        carried = member.read()
        block = tar.extractfile("portenv/meta")
        assert block is not None
        meta = dict(line.partition("=")[::2] for line in block.read().decode().split("\n"))
    assert names == ["portenv/meta", "portenv/payload.tar.zst", UNZSTD_NAME, UNZSTD_LICENCE_NAME]
    assert meta["unzstd_size"] == str(len(carried))
    assert meta["unzstd_sha256"] == hashlib.sha256(carried).hexdigest()
    assert gzip.decompress(carried) == (BUILT / MACHINE / "portenv-unzstd").read_bytes()
    assert decompressor(MACHINE).gz == carried, "the same bytes at every pack"


def test_a_gzip_archive_carries_none(tmp_path: Path) -> None:
    payload, files = payload_of(env_tree(tmp_path / "tree"))
    archive = write_archive(tmp_path / "env.tar", payload, files)
    with tarfile.open(archive) as tar:
        assert UNZSTD_NAME not in tar.getnames()
    assert b"unzstd_" not in archive.read_bytes()[:5120]


def test_no_decompressor_for_the_arch_is_one_clear_refusal() -> None:
    with pytest.raises(InputError) as refused:
        decompressor("riscv64")
    assert "portenv-unzstd for riscv64 is not built" in str(refused.value)
    assert "--compression gzip" in str(refused.value.hint)


@pytest.mark.parametrize("shell", ["dash", "busybox"], indirect=True)
def test_the_sh_unpacker_needs_no_zstd_command(shell: Shell, tmp_path: Path) -> None:
    """A `zstd` that fails is first on PATH: the unpack must not call it."""
    payload, files = payload_of(env_tree(tmp_path / "tree"), "zstd")
    archive = write_archive(tmp_path / "env.sh", payload, files, compression="zstd")
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "zstd").write_text("#!/bin/sh\necho 'zstd was called' >&2\nexit 99\n")
    (fake / "zstd").chmod(0o755)
    up = Unpacker(shell, "sh", tmp_path)
    done = up.run(archive, "-o", str(tmp_path / "out"), path_first=fake)
    assert done.code == Exit.OK, done.stderr
    assert (tmp_path / "out" / "env" / "etc" / "conf").is_file()
    assert "zstd was called" not in done.stderr
    assert not list((tmp_path / "out").glob(".portenv-*")), "the decompressor is left behind"
    listed = up.run(archive, "--list", path_first=fake)
    assert listed.code == Exit.OK or "lists no packages" in listed.stderr, listed.stderr
    checked = up.run(archive, "--check", "-o", str(tmp_path / "again"), path_first=fake)
    assert checked.code == Exit.OK, checked.stderr


@pytest.mark.parametrize("shell", ["dash", "busybox"], indirect=True)
def test_check_refuses_a_damaged_decompressor(shell: Shell, tmp_path: Path) -> None:
    payload, files = payload_of(env_tree(tmp_path / "tree"), "zstd")
    archive = write_archive(tmp_path / "env.tar", payload, files, compression="zstd")
    data = bytearray(archive.read_bytes())
    data[data.index(b"\x1f\x8b", 5120 + len(payload)) + 20] ^= 0xFF  # inside the gzip member
    archive.write_bytes(bytes(data))
    done = Unpacker(shell, "tar", tmp_path).run(archive, "--check", "-o", str(tmp_path / "o"))
    assert done.code == Exit.INTEGRITY, done.stderr
    assert "the decompressor in" in done.stderr


NOEXEC_CASES = {
    # case: (the cache folder, /dev/shm's mount option, the exit, what the hint says)
    "the-cache": ("cache", "noexec", Exit.OK, ""),
    "dev-shm": ("noexec/cache", "exec", Exit.OK, ""),
    "nowhere": ("noexec/cache", "noexec", Exit.DESTINATION, "set TMPDIR to a folder"),
    "not-an-unsafe-cache": ("unsafe", "noexec", Exit.DESTINATION, "set TMPDIR to a folder"),
}
MOUNTS = """
mount --bind "$1" "$1" && mount -o remount,bind,noexec "$1" &&
mount --bind "$2" /dev/shm && mount -o remount,bind,"$3" /dev/shm && shift 3 && exec "$@"
"""
"""TMPDIR ($1) noexec, and /dev/shm a folder of the test ($2, exec or noexec, $3): bind
mounts, so that what the unpacker leaves in them stays visible after the namespace ends."""


def run_noexec(up: Unpacker, archive: Path, cache: str, shm: str, *args: str) -> Result:
    """Run the unpacker with TMPDIR (tmp/noexec) noexec, /dev/shm tmp/shm mounted `shm`, and
    the cache folder tmp/`cache`, in a mount namespace of its own (as root)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare, to mount noexec folders in a mount namespace")
    for folder in ("noexec", "shm"):
        (up.tmp / folder).mkdir(exist_ok=True)
    mounts = ["sh", "-c", MOUNTS, "mounts", str(up.tmp / "noexec"), str(up.tmp / "shm"), shm]
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", *mounts, *up.argv(archive), *args],
        capture_output=True,
        text=True,
        env=up.env(TMPDIR=str(up.tmp / "noexec"), PORTENV_CACHE=str(up.tmp / cache)),
        timeout=60,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.mark.root
@pytest.mark.parametrize("case", sorted(NOEXEC_CASES))
@pytest.mark.parametrize("shell", ["dash", "busybox"], indirect=True)
def test_list_runs_the_decompressor_where_it_can(shell: Shell, tmp_path: Path, case: str) -> None:
    """A TMPDIR mounted noexec (hardened servers): --list tries the user's cache, then
    /dev/shm, and fails in one line naming TMPDIR when none runs it; a cache folder that
    other users can write to is never used."""
    cache, shm, code, hint = NOEXEC_CASES[case]
    tree = env_tree(tmp_path / "tree")
    (tree / ".portenv" / "packages.txt").write_text("demo 1.0 (conda)\n")
    payload, files = payload_of(tree, "zstd")
    archive = write_archive(tmp_path / "env.sh", payload, files, compression="zstd")
    if case == "not-an-unsafe-cache":
        (tmp_path / cache).mkdir()
        (tmp_path / cache).chmod(0o777)
    done = run_noexec(Unpacker(shell, "sh", tmp_path), archive, cache, shm, "--list")
    assert done.code == code, done.stderr
    if code == Exit.OK:
        assert (done.stdout, done.stderr) == ("demo 1.0 (conda)\n", "")
    else:
        first, second = done.stderr.splitlines()
        assert first.startswith("error: found no folder to run the decompressor from"), first
        assert str(tmp_path / "noexec") in first and "/dev/shm" in first
        assert hint in second
    assert not list(tmp_path.rglob(".portenv-unzstd.*")), "the decompressor is left behind"


@pytest.mark.root
@pytest.mark.parametrize("shell", ["dash", "busybox"], indirect=True)
def test_an_updates_check_runs_the_decompressor_beside_the_destination(
    shell: Shell, tmp_path: Path
) -> None:
    """TMPDIR, the cache and /dev/shm all noexec: an update's --check runs it in -o DIR."""
    stage = tmp_path / "stage" / ".portenv-update"
    stage.mkdir(parents=True)
    (stage / "apply.py").write_text("import sys\nprint('engine:', *sys.argv[1:])\n")
    (stage / "plan.json").write_text("{}")
    payload, files = payload_of(stage.parent, "zstd")
    keys = ("a" * 64, "b" * 64, "from", "to", "0", "0", "0", "bin/python3.12")
    update = tuple(zip(UPDATE_KEYS, keys, strict=True))
    archive = write_archive(
        tmp_path / "update.sh", payload, files, compression="zstd", update=update
    )
    dest = tmp_path / "apps" / "env"
    (dest / ".portenv").mkdir(parents=True)
    (dest / "bin").mkdir()
    (dest / "bin" / "python3.12").write_text(f"#!/bin/sh\nexec '{sys.executable}' \"$@\"\n")
    (dest / "bin" / "python3.12").chmod(0o755)
    up = Unpacker(shell, "sh", tmp_path)
    done = run_noexec(up, archive, "noexec/cache", "noexec", "--check", "-o", str(dest.parent))
    assert done.code == Exit.OK, done.stderr
    assert done.stdout == f"engine: {dest} - - --check\n"
    assert "all checks passed" in done.stderr
    assert not list(tmp_path.rglob(".portenv-unzstd.*")), "the decompressor is left behind"

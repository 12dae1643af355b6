"""Tests of the target-side unpacker, src/portenv/target/portenv-unpack.sh.

Every case runs under each shell found on the host: dash, bash, and busybox sh with
busybox's own applets first on PATH (so tail, head, tar, gzip, sha256sum, df... are
busybox's). Archives are built here, following docs/format.md byte for byte, with a
fake environment whose interpreter is a sh wrapper around the host python and whose
relocate.py records the --to value it was given.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support.unpacksh import (
    MACHINE,
    OFFSET_RE,
    OTHER_ARCH,
    RELOCATE_FAIL,
    RELOCATE_SLOW,
    SCRIPT,
    Env,
    Shell,
    Unpacker,
    _payload_tar,
    assert_relocated,
    build_sh,
    build_tar,
    dead_pid,
    tree,
    wait_for_mark,
)

# --------------------------------------------------------------------------- the script


def test_script_shape() -> None:
    text = SCRIPT.read_bytes()
    assert text.startswith(b"#!/bin/sh\n")
    assert len(OFFSET_RE.findall(text)) == 1
    assert OFFSET_RE.search(text) is not None
    assert text.count(b"PORTENV_EMBEDDED_OFFSET=") == 1
    assert OFFSET_RE.findall(text) == [b"0000000000"]
    assert text.rstrip(b"\n").splitlines()[-1] == b"exit"
    for bashism in (b"[[", b"pipefail", b"local ", b"10#"):
        assert bashism not in text
    # ksh/bash function syntax (awk programs inside the script declare `function f(args)`)
    assert not re.search(rb"\bfunction\s+\w+\s*(\(\s*\))?\s*\{", text)


def test_script_parses(shell: Shell) -> None:
    proc = subprocess.run(
        [*shell.argv, "-n", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_help(up: Unpacker) -> None:
    res = up.run(up.write(build_tar()), "--help")
    assert res.code == 0
    assert res.stdout.startswith("usage: sh portenv-unpack ARCHIVE.tar [-o DIR]")
    for option in ("--env-name NAME", "--force", "--sha256 HEX", "--check", "exit codes"):
        assert option in res.stdout


# --------------------------------------------------------------------------- success


def test_unpacks_and_relocates(up: Unpacker) -> None:
    file = up.write(build_tar())
    res = up.run(file, "-o", str(up.tmp / "out"))
    dest = up.tmp / "out" / "env"
    assert res.code == 0, res.stderr
    assert res.stdout == ""
    assert res.last == f"portenv: unpacked 9 files into {dest}"
    assert_relocated(dest)
    assert sorted(os.listdir(up.tmp / "out")) == ["env"]


def test_env_name_sha256_and_default_dir(up: Unpacker) -> None:
    file = up.write(build_tar())
    digest = hashlib.sha256(file.read_bytes()).hexdigest().upper()
    work = up.tmp / "work"
    work.mkdir()
    res = up.run(file, "--env-name", "myenv", f"--sha256={digest}", cwd=work)
    assert res.code == 0, res.stderr
    assert (work / "myenv" / ".portenv" / "relocated-to").read_text() == str(work / "myenv")


def test_standalone_unpacker_reads_env_sh(shell: Shell, tmp_path: Path) -> None:
    up = Unpacker(shell, "tar", tmp_path)
    file = tmp_path / "env.sh"
    file.write_bytes(build_sh(build_tar()))
    res = up.run(file, "-o", str(tmp_path / "out"))
    assert res.code == 0, res.stderr
    assert_relocated(tmp_path / "out" / "env")


def test_relative_dir_is_resolved(up: Unpacker) -> None:
    (up.tmp / "real").mkdir()
    (up.tmp / "link").symlink_to("real")
    res = up.unpack(build_tar(), "-o", "link/a/../b//c/.", cwd=up.tmp)
    dest = up.tmp / "real" / "b" / "c" / "env"
    assert res.code == 0, res.stderr
    assert (dest / ".portenv" / "relocated-to").read_text() == str(dest)
    assert not (up.tmp / "real" / "a").exists()


def test_info(up: Unpacker) -> None:
    res = up.run(up.write(build_tar()), "--info")
    assert res.code == 0, res.stderr
    assert "format=1" in res.stdout.splitlines()
    assert f"arch={MACHINE}" in res.stdout.splitlines()


def test_check_writes_nothing(up: Unpacker) -> None:
    file = up.write(build_tar())
    before = tree(up.tmp)
    res = up.run(file, "--check", "-o", str(up.tmp / "out" / "sub"))
    assert res.code == 0, res.stderr
    assert res.first.startswith("portenv: all checks passed")
    assert tree(up.tmp) == before


# --------------------------------------------------------------------------- target checks


def test_wrong_arch(up: Unpacker) -> None:
    res = up.unpack(build_tar(meta={"arch": OTHER_ARCH}), "-o", str(up.tmp / "out"))
    assert res.code == 4
    assert res.first == (
        f"error: this machine is {MACHINE}, the environment is built for {OTHER_ARCH}"
    )
    assert res.stderr.splitlines()[1].startswith("  hint: ")
    assert not (up.tmp / "out").exists()


def test_glibc_too_old(up: Unpacker) -> None:
    res = up.unpack(build_tar(meta={"glibc_floor": "9.99"}), "-o", str(up.tmp / "out"))
    assert res.code == 4
    assert re.fullmatch(
        r"error: this machine has glibc 2\.\d+, the environment needs "
        r"glibc >= 9\.99",
        res.first,
    ), res.stderr
    assert not (up.tmp / "out").exists()


def test_glibc_floor_compares_numerically(up: Unpacker) -> None:
    # 2.9 < 2.10 < 2.3x: a string comparison would refuse 2.9 and accept 2.100
    assert up.unpack(build_tar(meta={"glibc_floor": "2.9"}), "--check").code == 0
    assert up.unpack(build_tar(meta={"glibc_floor": "2.100"}), "--check").code == 4


def test_musl_libc_refused(up: Unpacker) -> None:
    res = up.unpack(build_tar(meta={"libc": "musl"}), "-o", str(up.tmp / "out"))
    assert res.code == 4
    assert res.first == "error: this environment needs the C library 'musl'"


def test_not_enough_space(up: Unpacker) -> None:
    res = up.unpack(build_tar(meta={"unpacked_kib": str(10**15)}), "-o", str(up.tmp / "out"))
    assert res.code == 6
    assert re.fullmatch(
        r"error: .* has \d+ KiB free, the environment needs 10{15} KiB", res.first
    ), res.stderr
    assert not (up.tmp / "out").exists()


# --------------------------------------------------------------------------- archive checks


def test_flipped_payload_byte(up: Unpacker) -> None:
    data = bytearray(build_tar())
    data[5120 + 100] ^= 0xFF
    file = up.write(bytes(data))
    res = up.run(file, "-o", str(up.tmp / "out"))
    assert res.code == 7
    assert res.first.startswith(f"error: the payload of {file} is damaged (sha256 ")
    assert not (up.tmp / "out").exists()


def test_wrong_sha256_option(up: Unpacker) -> None:
    res = up.unpack(build_tar(), "-o", str(up.tmp / "out"), "--sha256", "0" * 64)
    assert res.code == 7
    assert res.first.endswith(f", not the expected {'0' * 64}")
    assert not (up.tmp / "out").exists()


def test_malformed_sha256_option(up: Unpacker) -> None:
    res = up.unpack(build_tar(), "--sha256", "abc")
    assert res.code == 2
    assert res.first == "error: --sha256 needs 64 hex digits"


@pytest.mark.parametrize("cut", [-1, 5120 + 50, 4000, 600], ids=["last", "payload", "meta", "hdr"])
def test_truncated(up: Unpacker, cut: int) -> None:
    data = build_tar()
    payload_end = 5120 + int(re.findall(rb"payload_size=(\d+)", data)[0])
    data = data[: payload_end - 1] if cut == -1 else data[:cut]
    file = up.write(data)
    res = up.run(file, "-o", str(up.tmp / "out"))
    assert res.code == 3
    assert res.first.startswith(f"error: {file} is truncated ("), res.stderr
    assert not (up.tmp / "out").exists()


@pytest.mark.parametrize("kind", ["random", "zeros", "other-tar", "empty"])
def test_not_a_portenv_file(up: Unpacker, kind: str) -> None:
    if kind == "random":
        data = os.urandom(20000)
    elif kind == "zeros":
        data = bytes(20000)  # NUL bytes must not reach a command substitution (bash warns)
    elif kind == "empty":
        data = b""
    else:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            info = tarfile.TarInfo("hello.txt")
            info.size = 6
            tar.addfile(info, io.BytesIO(b"hello\n"))
        data = buf.getvalue()
    file = up.write(data)
    res = up.run(file, "-o", str(up.tmp / "out"))
    assert res.code == 3
    what = "carries no portenv archive" if up.shape == "sh" else "is not a portenv archive"
    assert res.first == f"error: {file} {what}"
    assert not (up.tmp / "out").exists()


@pytest.mark.parametrize(
    ("meta", "first"),
    [
        ({"format": "2"}, "has archive format '2', this unpacker knows format 1"),
        ({"compression": "lz4"}, "uses compression 'lz4'"),
        ({"payload_size": "12x"}, "has a damaged meta block"),
        ({"python": "../../bin/sh"}, "has a damaged meta block"),
        ({"payload_sha256": None}, "has a damaged meta block"),
    ],
    ids=["format", "compression", "size", "python", "nosha"],
)
def test_bad_meta(up: Unpacker, meta: dict[str, str | None], first: str) -> None:
    file = up.write(build_tar(meta=meta))
    res = up.run(file, "-o", str(up.tmp / "out"))
    assert res.code == 3
    assert res.first == f"error: {file} {first}"


def test_payload_size_disagrees_with_tar_header(up: Unpacker) -> None:
    data = build_tar()
    size = int(re.findall(rb"payload_size=(\d+)", data)[0])
    data = data.replace(b"payload_size=%d\n" % size, b"payload_size=%d\n" % (size - 1))
    res = up.unpack(data, "-o", str(up.tmp / "out"))
    assert res.code == 3
    assert "has no gzip payload where format 1 puts it" in res.first


def test_missing_archive_file(shell: Shell, tmp_path: Path) -> None:
    up = Unpacker(shell, "tar", tmp_path)  # env.sh is its own archive
    res = up.run(up.tmp / "nope.tar")
    assert res.code == 3
    assert res.first == f"error: cannot read {up.tmp / 'nope.tar'}"


# --------------------------------------------------------------------------- usage


@pytest.mark.parametrize(
    ("args", "first"),
    [
        (["--frobnicate"], "error: unknown option: --frobnicate"),
        (["-o"], "error: option -o needs a value"),
        (["extra-arg"], "error: unexpected argument: extra-arg"),
    ],
    ids=["unknown", "noval", "extra"],
)
def test_usage_errors(up: Unpacker, args: list[str], first: str) -> None:
    res = up.unpack(build_tar(), *args)
    assert res.code == 2
    assert res.first == first
    assert res.stderr.splitlines()[1].startswith("  hint: ")


def test_no_archive_given(shell: Shell, tmp_path: Path) -> None:
    proc = subprocess.run(
        [*shell.argv, str(SCRIPT), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": shell.path},
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == "error: no ARCHIVE given"


# --------------------------------------------------------------------------- destination


def test_existing_env_without_force(up: Unpacker) -> None:
    dest = up.tmp / "out" / "env"
    (dest / "sub").mkdir(parents=True)
    (dest / "sub" / "keep.txt").write_text("mine")
    before = tree(up.tmp / "out")
    res = up.unpack(build_tar(), "-o", str(up.tmp / "out"))
    assert res.code == 5
    assert res.first == f"error: {dest} already exists"
    assert tree(up.tmp / "out") == before


def test_force_replaces_env(up: Unpacker) -> None:
    out = up.tmp / "out"
    assert up.unpack(build_tar(), "-o", str(out)).code == 0
    (out / "env" / "old-marker").write_text("old")
    res = up.run(up.write(build_tar(Env(data=b"new\n")), "v2"), "-o", str(out), "--force")
    assert res.code == 0, res.stderr
    assert_relocated(out / "env", b"new\n")
    assert not (out / "env" / "old-marker").exists()
    assert sorted(os.listdir(out)) == ["env"]


def test_force_accepts_empty_dir_refuses_foreign_dir(up: Unpacker) -> None:
    out = up.tmp / "out"
    (out / "env").mkdir(parents=True)
    file = up.write(build_tar())
    assert up.run(file, "-o", str(out), "--force").code == 0
    (out / "other").mkdir()
    (out / "other" / "precious").write_text("x")
    before = tree(out)
    res = up.run(file, "-o", str(out), "--env-name", "other", "--force")
    assert res.code == 5
    assert res.first.endswith("exists and is not an environment: --force will not replace it")
    assert tree(out) == before


@pytest.mark.parametrize("precreate", [True, False], ids=["dir-exists", "dir-missing"])
def test_relocation_failure_leaves_nothing(up: Unpacker, precreate: bool) -> None:
    out = up.tmp / "out"
    if precreate:
        out.mkdir()
    res = up.unpack(build_tar(Env(relocate=RELOCATE_FAIL)), "-o", str(out / "deeper"))
    assert res.code == 8
    assert "relocate: refused" in res.stderr
    assert f"error: relocating the environment to {out / 'deeper' / 'env'} failed: exit 1" in (
        res.stderr.splitlines()
    )
    assert tree(up.tmp / "out") == {}
    assert out.exists() == precreate


def test_relocation_error_becomes_the_one_error_line(up: Unpacker) -> None:
    relocate = (
        "import sys\n"
        "print('error: relocation failed: [Errno 28] No space left on device', file=sys.stderr)\n"
        "print('  hint: check the free space', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    out = up.tmp / "out"
    res = up.unpack(build_tar(Env(relocate=relocate)), "-o", str(out))
    assert res.code == 8
    assert res.stderr.splitlines() == [
        f"error: relocating the environment to {out / 'env'} failed: "
        "[Errno 28] No space left on device",
        f"  hint: check the free space; {out / 'env'} was left as it was",
    ]
    assert not out.exists()


def test_force_with_failing_relocation_keeps_old(up: Unpacker) -> None:
    out = up.tmp / "out"
    assert up.unpack(build_tar(), "-o", str(out)).code == 0
    before = tree(out)
    res = up.run(up.write(build_tar(Env(relocate=RELOCATE_FAIL)), "bad"), "-o", str(out), "--force")
    assert res.code == 8
    assert tree(out) == before


def test_broken_gzip_with_matching_sha_is_detected(up: Unpacker) -> None:
    raw, _ = _payload_tar(Env(data=os.urandom(50000)))
    payload = gzip.compress(raw, mtime=0)
    payload = payload[: len(payload) // 2]  # sha256 in meta matches these bytes
    res = up.unpack(build_tar(payload=payload), "-o", str(up.tmp / "out"))
    assert res.code == 8
    assert re.search(
        r"^error: extracting into .* failed \(gzip exit 1(, tar exit \d+)?\)$",
        res.stderr,
        re.MULTILINE,
    ), res.stderr
    assert not (up.tmp / "out").exists()


def test_missing_files_are_detected(up: Unpacker) -> None:
    res = up.unpack(build_tar(meta={"files": "10"}), "-o", str(up.tmp / "out"))
    assert res.code == 8
    assert re.match(r"error: extracted 9 of 10 files into .*/\.portenv-tmp\.env\.\d+$", res.first)
    assert not (up.tmp / "out").exists()


@pytest.mark.parametrize(
    "bad",
    ["a$b", 'a"b', "a`b", "a\\b", "a\nb"],
    ids=["dollar", "quote", "backtick", "backslash", "newline"],
)
def test_destination_bad_characters(up: Unpacker, bad: str) -> None:
    res = up.unpack(build_tar(), "-o", str(up.tmp / bad))
    assert res.code == 5
    assert res.stderr.startswith(f"error: the destination {up.tmp / bad / 'env'} holds a newline")
    assert not (up.tmp / bad).exists()


def test_destination_too_long(up: Unpacker) -> None:
    out = up.tmp / "out dir é"  # lengths count bytes: é is two
    dest = str(out / "env")
    size = len(dest.encode())
    res = up.unpack(build_tar(meta={"prefix_max": str(size - 1)}), "-o", str(out))
    assert res.code == 5
    assert res.first == (
        f"error: the destination {dest} is {size} bytes long, "
        f"the environment accepts at most {size - 1}"
    )
    assert not out.exists()
    res = up.unpack(build_tar(meta={"prefix_max": str(size)}), "-o", str(out))
    assert res.code == 0, res.stderr
    assert_relocated(Path(dest))


def test_bad_env_name(up: Unpacker) -> None:
    res = up.unpack(build_tar(), "--env-name", "a/b")
    assert res.code == 5
    assert res.first == "error: bad environment name 'a/b'"


def test_dir_is_a_file(up: Unpacker) -> None:
    (up.tmp / "afile").write_text("x")
    res = up.unpack(build_tar(), "-o", str(up.tmp / "afile" / "sub"))
    assert res.code == 5
    assert res.first == f"error: {up.tmp / 'afile'} is not a folder"


# --------------------------------------------------------------------------- leftovers, locks


def test_stale_leftovers_are_cleaned(up: Unpacker) -> None:
    out = up.tmp / "out"
    pid = dead_pid()
    for name in (f".portenv-tmp.env.{pid}", ".portenv-lock.env"):
        (out / name).mkdir(parents=True)
        (out / name / "pid").write_text(f"{pid}\n")
    (out / f".portenv-tmp.other.{pid}").mkdir()  # another env's: not ours to clean
    res = up.unpack(build_tar(), "-o", str(out))
    assert res.code == 0, res.stderr
    assert sorted(os.listdir(out)) == [f".portenv-tmp.other.{pid}", "env"]


def test_live_lock_refuses(up: Unpacker) -> None:
    out = up.tmp / "out"
    lock = out / ".portenv-lock.env"
    lock.mkdir(parents=True)
    (lock / "pid").write_text(f"{os.getpid()}\n")
    res = up.unpack(build_tar(), "-o", str(out))
    assert res.code == 5
    assert res.first == f"error: another unpack into {out / 'env'} is running (pid {os.getpid()})"
    assert sorted(os.listdir(out)) == [".portenv-lock.env"]


@pytest.mark.parametrize("force", [True, False], ids=["force", "noforce"])
def test_interrupted_force_is_restored(up: Unpacker, force: bool) -> None:
    out = up.tmp / "out"
    old = out / f".portenv-old.env.{dead_pid()}"
    (old / ".portenv").mkdir(parents=True)
    (old / "marker").write_text("old env")
    res = up.unpack(build_tar(), "-o", str(out), *(["--force"] if force else []))
    assert f"portenv: restored {out / 'env'}" in res.stderr
    assert sorted(os.listdir(out)) == ["env"]
    if force:
        assert res.code == 0, res.stderr
        assert_relocated(out / "env")
    else:
        assert res.code == 5
        assert (out / "env" / "marker").read_text() == "old env"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_interrupted_run_leaves_old_env(up: Unpacker, sig: signal.Signals) -> None:
    out = up.tmp / "out"
    assert up.unpack(build_tar(), "-o", str(out)).code == 0
    before = tree(out)
    mark = up.tmp / "mark"
    file = up.write(build_tar(Env(relocate=RELOCATE_SLOW)), "slow")
    proc = subprocess.Popen(
        [*up.argv(file), "-o", str(out), "--force"],
        start_new_session=True,
        env=up.env(PORTENV_TEST_MARK=str(mark)),
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_mark(proc, mark)
        assert any(p.startswith(".portenv-lock.") for p in os.listdir(out))
        os.killpg(proc.pid, sig)  # as a terminal does: the whole process group
        assert proc.wait(timeout=30) == 128 + sig
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert tree(out) == before


def test_python_environment_variables_are_ignored(up: Unpacker) -> None:
    file = up.write(build_tar())
    env = up.env(PYTHONHOME="/nonexistent", PYTHONPATH="/nonexistent")
    proc = subprocess.run(
        [*up.argv(file), "-o", str(up.tmp / "out")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert_relocated(up.tmp / "out" / "env")


def test_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed: run scripts/install-system-deps.sh --tests")
    proc = subprocess.run(
        [shellcheck, "-s", "sh", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("check", [True, False], ids=["check", "unpack"])
def test_read_only_mount_is_refused_before_writing(up: Unpacker, check: bool) -> None:
    """busybox's `[ -w DIR ]` is true for root on a read-only mount: /proc/mounts tells."""
    folder = up.tmp / "ro"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(folder)], check=True)
    try:
        res = up.unpack(build_tar(), "-o", str(folder / "sub"), *(["--check"] if check else []))
    finally:
        subprocess.run(["umount", str(folder)], check=True)
    assert res.code == 5, res.stderr
    assert res.first == f"error: cannot write into {folder}"


def test_force_refuses_a_mount_point(up: Unpacker) -> None:
    out = up.tmp / "out"
    assert up.unpack(build_tar(), "-o", str(out)).code == 0
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(out / "env")], check=True)
    try:
        res = up.unpack(build_tar(), "-o", str(out), "--force")
        assert sorted(os.listdir(out)) == ["env"]
    finally:
        subprocess.run(["umount", str(out / "env")], check=True)
    assert res.code == 5, res.stderr
    assert res.first == f"error: {out / 'env'} is a mount point: --force cannot replace it"
    assert_relocated(out / "env")

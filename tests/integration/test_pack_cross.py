"""Packing for linux-aarch64 here: nothing of the target runs, every binary is aarch64."""

from __future__ import annotations

import asyncio
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import rattler

from portenv.platforms import host_subdir
from tests.conftest import Archives, portenv
from tests.integration.test_pack import meta_of, payload_of, readelf_glibc_floor
from tests.integration.test_pack_python import CHECK
from tests.support.channel import write_project
from tests.support.condapkg import PackageFile, make_conda_package
from tests.support.crosschannel import cross_python_spec
from tests.support.pyrelocate import installed_pythons

EM_AARCH64 = 183
"""e_machine of an AArch64 ELF file (the ELF specification's number, read independently)."""


def e_machine(data: bytes) -> int:
    """The e_machine field of a little-endian ELF header (offset 18, two bytes)."""
    return int.from_bytes(data[18:20], "little")


def test_host_is_not_the_target() -> None:
    """The tests below prove cross-packing only where the machine is not aarch64."""
    assert platform.machine() != "aarch64"


def test_every_elf_file_of_the_payload_is_aarch64(cross_archives: Archives, tmp_path: Path) -> None:
    payload = payload_of(cross_archives.tar)
    machines: dict[str, int] = {}
    for member in payload.getmembers():
        stream = payload.extractfile(member) if member.isfile() else None
        data = stream.read(64) if stream is not None else b""
        if data[:4] == b"\x7fELF":
            machines[member.name] = e_machine(data)
    assert {"bin/python3.11", "bin/greet", "bin/barcli", "lib/libbar.so", "lib/libssl.so.3"} <= set(
        machines
    )
    assert len(machines) > 50, "lib-dynload alone has dozens of extension modules"
    foreign = {name: m for name, m in machines.items() if m != EM_AARCH64}
    assert foreign == {}


def test_meta_names_the_target_and_its_glibc_floor(
    cross_archives: Archives, tmp_path: Path
) -> None:
    meta = meta_of(cross_archives.tar)
    assert meta["arch"] == "aarch64" and meta["platform"] == "linux-aarch64"
    assert meta["python"] == "bin/python3.11"
    payload_of(cross_archives.tar).extractall(tmp_path / "env", filter="data")
    assert meta["glibc_floor"] == readelf_glibc_floor(tmp_path / "env")


def test_the_bytecode_is_compiled_by_a_local_python_of_the_targets_version(
    cross_archives: Archives, tmp_path: Path
) -> None:
    """Nothing of the target runs: a CPython 3.11 of this machine (the same magic number as
    the target's) compiles it, and the bytecode is as valid there as the target's own."""
    payload = payload_of(cross_archives.tar)
    names = payload.getnames()
    assert "lib/python3.11/site-packages/hello_py/__pycache__/__init__.cpython-311.pyc" in names
    payload.extractall(tmp_path / "env", filter="data")
    python = installed_pythons(["3.11"])["3.11"]
    done = subprocess.run(
        [str(python), "-I", "-c", CHECK, str(tmp_path / "env")],
        capture_output=True,
        text=True,
        check=True,
    )
    good, bad = done.stdout.split(" ", 1)
    assert int(good) > 500 and bad.strip() == "[]"


def test_the_host_refuses_the_aarch64_archive(cross_archives: Archives, tmp_path: Path) -> None:
    """On this x86_64 machine the target-side checks stop before writing anything."""
    dest = tmp_path / "out"
    for argv in (
        ["sh", str(cross_archives.self_extracting), "-o", str(dest)],
        ["sh", str(cross_archives.unpacker), str(cross_archives.tar), "-o", str(dest)],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert done.returncode == 4, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, done.stderr
        assert "aarch64" in errors[0] and platform.machine() in errors[0]
        assert not dest.exists()


def _index(channel: Path) -> None:
    asyncio.run(rattler.index.index_fs(channel, write_zst=False, write_shards=False))


def test_a_foreign_binary_in_the_payload_is_refused(
    cross_channel: Path, tmp_path: Path, package_cache: Path
) -> None:
    """A linux-aarch64 package that ships an x86_64 program: refused, naming the file."""
    channel = tmp_path / "channel"
    python = next((cross_channel / "linux-aarch64").glob("python-*.conda"))
    (channel / "linux-aarch64").mkdir(parents=True)
    (channel / "noarch").mkdir()
    shutil.copy(python, channel / "linux-aarch64" / python.name)
    host_program = Path(sys.executable).resolve().read_bytes()
    tool = PackageFile("bin/hosttool", host_program, executable=True)
    make_conda_package(channel, "hosttool", [tool], subdir="linux-aarch64")
    _index(channel)
    project = write_project(
        tmp_path / "project", channel, [cross_python_spec(), "hosttool"], platform="linux-aarch64"
    )
    out = tmp_path / "env.sh"
    done = portenv(
        "pack", project, "-p", "linux-aarch64", "-o", out, "--use-cache", package_cache, check=False
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error:") and "Traceback" not in done.stderr
    assert "bin/hosttool" in lines[0] and "x86_64" in lines[0] and "aarch64" in lines[0]
    assert not out.exists() and not out.with_name("env.sh.sha256").exists()


def test_a_local_interpreter_cannot_be_packed_for_another_machine(tmp_path: Path) -> None:
    """The conda-free source runs the interpreter, so it packs for this machine only."""
    argv: list[str | Path] = ["pack", "--python", sys.executable, "-p", "linux-aarch64"]
    argv += ["-o", tmp_path / "e.sh"]
    done = portenv(*argv, check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"runs on {host_subdir()} only, not linux-aarch64" in done.stderr
    assert not (tmp_path / "e.sh").exists()

"""--python FILE: a python-build-standalone archive, extracted safely, checked, then inspected.

The PBS archives are STAND-INS (tests/support/standalone.py says why and how they differ):
real ones are on GitHub only. The archives for other machines are the running interpreter's
binary with its ELF header edited, which is all portenv reads before refusing them.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import sys
import tarfile
from pathlib import Path

import pytest

from portenv.errors import InputError
from portenv.pack.sources import base_interpreter
from portenv.stage.cpython_archive import (
    extracted_standalone,
    is_python_archive,
    standalone_python,
)
from portenv.stage.cpython_closure import read_elf
from tests.support.standalone import full_archive, install_only_archive, python_json

EXECUTABLE = Path(sys.executable).resolve()
_EM_AARCH64 = 183
_GLIBC_LOADER = b"/lib64/ld-linux-x86-64.so.2\0"
_MUSL_LOADER = b"/lib/ld-musl-x86_64.so.1\0"


def archive_of(
    path: Path, members: dict[str, bytes], *, links: dict[str, str] | None = None
) -> Path:
    """A .tar.gz holding ``members`` (name -> bytes, executable) and symlinks."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def foreign(kind: str) -> bytes:
    """The running python's ELF binary, claimed to be for AArch64 or loaded by musl's ld.so."""
    data = bytearray(EXECUTABLE.read_bytes())
    if kind == "aarch64":
        struct.pack_into("<H", data, 18, _EM_AARCH64)
    else:
        at = data.find(_GLIBC_LOADER)
        assert at > 0, "the running python has no x86-64 glibc loader to replace"
        data[at : at + len(_GLIBC_LOADER)] = _MUSL_LOADER.ljust(len(_GLIBC_LOADER), b"\0")
    return bytes(data)


def test_archive_names() -> None:
    assert is_python_archive(
        Path("cpython-3.12.1+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz")
    )
    assert is_python_archive(Path("cpython-3.12.1-x86_64-unknown-linux-gnu-pgo+lto-full.tar.zst"))
    assert not is_python_archive(Path("/usr/bin/python3.12"))


@pytest.mark.parametrize("make", [install_only_archive, full_archive], ids=["install_only", "full"])
def test_a_standalone_archive_is_a_base_installation(make: object, tmp_path: Path) -> None:
    archive = make()  # type: ignore[operator]
    with base_interpreter(archive, tmp_path) as base:
        assert base.build_prefix == "/install", "PBS's build prefix, now accepted"
        assert base.version[:2] == (3, 12)
        inside = base.executable.relative_to(tmp_path)
        expected = "install/bin/python3.12" if "full" in archive.name else "bin/python3.12"
        assert str(inside).endswith(f"python/{expected}"), inside
        assert read_elf(base.executable) is not None
    assert list((tmp_path / "staging").iterdir()) == [], "the extracted archive is removed"


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("aarch64", r"python archive for another machine: .*aarch64.* holds an AARCH64 interp"),
        ("musl", r"python archive for musl libc: .*musl.* loads with /lib/ld-musl-x86_64.so.1"),
    ],
)
def test_an_archive_for_another_platform_is_refused(
    tmp_path: Path, kind: str, message: str
) -> None:
    triple = "aarch64-unknown-linux-gnu" if kind == "aarch64" else "x86_64-unknown-linux-musl"
    archive = archive_of(
        tmp_path / f"cpython-3.12.1+20240107-{triple}-install_only.tar.gz",
        {"python/bin/python3.12": foreign(kind)},
        links={"python/bin/python3": "python3.12"},
    )
    scratch = tmp_path / "scratch"
    with pytest.raises(InputError, match=message) as caught, extracted_standalone(archive, scratch):
        pytest.fail("the archive was accepted")
    assert caught.value.hint and "install_only" in caught.value.hint
    assert list(scratch.iterdir()) == [], "nothing of a refused archive is left"


def test_python_json_names_the_target(tmp_path: Path) -> None:
    meta = {**python_json("3.12.1"), "target_triple": "aarch64-unknown-linux-gnu"}
    archive = archive_of(
        tmp_path / "cpython-3.12.1-aarch64-unknown-linux-gnu-pgo+lto-full.tar.gz",
        {
            "python/PYTHON.json": json.dumps(meta).encode(),
            "python/install/bin/python3.12": foreign("aarch64"),
        },
    )
    with pytest.raises(InputError, match=r"\(aarch64-unknown-linux-gnu\) holds an AARCH64"):
        standalone_python(archive, tmp_path / "out")


@pytest.mark.parametrize(
    ("members", "links", "message"),
    [
        ({"python/../evil": b"x"}, {}, "climbs out with '..'"),
        ({"python/bin/x": b"x"}, {"python/bin/python3": "/usr/bin/python3"}, "absolute symlink"),
        ({"python/bin/python": b"x"}, {}, "has no python/bin/python3"),
        ({"python/PYTHON.json": b'{"python_exe": "../../bin/sh"}'}, {}, "outside the archive"),
        ({"python/PYTHON.json": b"{}"}, {}, "no readable python_exe"),
        ({"python/bin/python3": b"#!/bin/sh\n"}, {}, "holds no Linux executable"),
    ],
)
def test_damaged_or_hostile_archives_are_refused(
    tmp_path: Path, members: dict[str, bytes], links: dict[str, str], message: str
) -> None:
    archive = archive_of(tmp_path / "cpython-3.12.1-x-install_only.tar.gz", members, links=links)
    with pytest.raises(InputError, match=message):
        standalone_python(archive, tmp_path / "out")
    assert not (tmp_path.parent / "evil").exists()


def test_not_an_archive(tmp_path: Path) -> None:
    fake = tmp_path / "cpython-3.12.1-install_only.tar.zst"
    fake.write_bytes(b"not zstd")
    with pytest.raises(InputError, match=r"cannot read .* as a python-build-standalone archive"):
        standalone_python(fake, tmp_path / "out")
    with pytest.raises(InputError, match="python archive not found"):
        standalone_python(tmp_path / "missing.tar.gz", tmp_path / "out2")
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_the_cli_takes_a_bare_archive_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--python ./x.tar.gz` is a file, not a command to look up on PATH; nothing is written."""
    from portenv.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "requirements.txt").write_text("idna\n")
    argv = ["pack", "--python", "./cpython-3.12.1-install_only.tar.gz", "-r", "requirements.txt"]
    assert main([*argv, "-o", "app.sh", "--use-cache", str(tmp_path / "cache")]) == 1
    assert capsys.readouterr().err.startswith(
        "error: python archive not found: cpython-3.12.1-install_only.tar.gz\n"
    )
    assert not (tmp_path / "app.sh").exists()

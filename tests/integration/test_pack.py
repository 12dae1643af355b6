"""Packing the local test project on the build machine: what lands in the payload, and how."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import Archives, portenv
from tests.support.faults import payload_tar_of


def payload_of(archive: Path) -> tarfile.TarFile:
    """The environment tar inside an env.tar."""
    return tarfile.open(fileobj=io.BytesIO(payload_tar_of(archive)))


def meta_of(archive: Path) -> dict[str, str]:
    with tarfile.open(archive) as outer:
        member = outer.extractfile("portenv/meta")
        assert member is not None
        lines = member.read().decode().split("\n")
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_same_lock_gives_the_same_bytes(
    core_project: Path, core_archives: Archives, tmp_path: Path
) -> None:
    """A second pack, with a cold cache and another output folder, is byte-identical."""
    again = tmp_path / "again.tar"
    portenv("pack", core_project, "-o", again, "--use-cache", tmp_path / "fresh-cache")
    assert again.read_bytes() == core_archives.tar.read_bytes()
    sidecar = (tmp_path / "again.tar.sha256").read_text()
    assert sidecar == f"{hashlib.sha256(again.read_bytes()).hexdigest()}  again.tar\n"


def test_payload_holds_a_relocatable_env(core_archives: Archives) -> None:
    payload = payload_of(core_archives.tar)
    names = set(payload.getnames())
    assert {".portenv/manifest.json", ".portenv/relocate.py", "bin/portenv-relocate"} <= names
    assert "bin/activate" in names and "bin/python3.12" in names
    assert "CACHEDIR.TAG" not in names
    assert not [n for n in names if n.startswith(("/", "./")) or ".." in n.split("/")]
    member = payload.extractfile(".portenv/manifest.json")
    assert member is not None
    manifest = json.loads(member.read())
    files = {f["path"]: f for f in manifest["files"]}
    assert files["bin/greet"]["mode"] == "binary" and files["bin/greet"]["regions"]
    assert files["etc/greet.conf"]["mode"] == "text"
    assert files["bin/activate"]["mode"] == "text"
    assert manifest["prefix"].startswith("/portenv_placehold")
    assert len(manifest["prefix"]) == manifest["prefix_max"] == 255
    greet = payload.extractfile("bin/greet")
    assert greet is not None
    data = greet.read()
    for offset, length in files["bin/greet"]["regions"]:
        assert data[offset : offset + len(manifest["prefix"])] == manifest["prefix"].encode()
        assert data[offset + length] == 0


def test_conda_meta_names_no_build_machine_path(
    core_archives: Archives, package_cache: Path
) -> None:
    payload = payload_of(core_archives.tar)
    for member in payload.getmembers():
        if member.name.startswith("conda-meta/") and member.name.endswith(".json"):
            stream = payload.extractfile(member)
            assert stream is not None
            text = stream.read().decode()
            assert str(package_cache) not in text, member.name
            assert "extracted_package_dir" not in text


def readelf_glibc_floor(root: Path) -> str:
    """The highest GLIBC_x.y that readelf (binutils) reports for any file: an independent check."""
    best = (0, 0)
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.read_bytes()[:4] == b"\x7fELF":
            out = subprocess.run(
                ["readelf", "-V", "-W", str(path)], capture_output=True, text=True, check=False
            ).stdout
            for major, minor in re.findall(r"Name: GLIBC_(\d+)\.(\d+)", out):
                best = max(best, (int(major), int(minor)))
    return f"{best[0]}.{best[1]}"


def test_meta_records_what_the_target_checks(core_archives: Archives, tmp_path: Path) -> None:
    meta = meta_of(core_archives.tar)
    payload = payload_of(core_archives.tar)
    payload.extractall(tmp_path / "env", filter="data")
    assert meta["format"] == "1" and meta["arch"] == "x86_64" and meta["platform"] == "linux-64"
    assert meta["glibc_floor"] == readelf_glibc_floor(tmp_path / "env")
    assert int(meta["files"]) == len(payload.getmembers())
    files = [p for p in (tmp_path / "env").rglob("*") if p.is_file() and not p.is_symlink()]
    real_kib = sum(p.stat().st_size for p in files) // 1024
    assert real_kib <= int(meta["unpacked_kib"]) <= real_kib * 2 + 8192
    assert meta["python"] == "bin/python3.12"
    with tarfile.open(core_archives.tar) as outer:
        data = outer.extractfile("portenv/payload.tar.zst")  # the default codec
        assert data is not None
        blob = data.read()
    assert meta["payload_sha256"] == hashlib.sha256(blob).hexdigest()
    assert int(meta["payload_size"]) == len(blob)


@pytest.mark.slow
def test_repeated_runs_never_crash(core_project: Path, tmp_path: Path, package_cache: Path) -> None:
    """py-rattler can crash at interpreter exit (FIELD-NOTES); the CLI must never show it."""

    def once(i: int) -> int:
        out = tmp_path / f"o{i}.tar"
        return portenv(
            "pack", core_project, "-o", out, "--use-cache", package_cache, check=False
        ).returncode

    with ThreadPoolExecutor(max_workers=2) as pool:
        codes = list(pool.map(once, range(24)))
    plans = [portenv("plan", core_project, "--json", check=False).returncode for _ in range(40)]
    assert codes == [0] * 24
    assert plans == [0] * 40


def test_output_inside_the_cache_is_refused(core_project: Path, package_cache: Path) -> None:
    done = portenv(
        "pack",
        core_project,
        "-o",
        package_cache / "x.sh",
        "--use-cache",
        package_cache,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: output ") and "inside the cache folder" in done.stderr


@pytest.mark.parametrize("name", ["", "a/b", "..", "-rf"])
def test_bad_env_name_is_refused(core_project: Path, tmp_path: Path, name: str) -> None:
    done = portenv("pack", core_project, "-o", tmp_path / "x.sh", "--env-name", name, check=False)
    assert done.returncode == 1 and "invalid environment folder name" in done.stderr
    assert not (tmp_path / "x.sh").exists()


def test_entry_makes_a_runnable_file(
    core_project: Path, tmp_path: Path, package_cache: Path
) -> None:
    tool = tmp_path / "tool.sh"
    portenv("pack", core_project, "-o", tool, "--use-cache", package_cache, "--entry", "hello-py")
    assert tool.stat().st_mode & 0o777 == 0o755
    head = tool.read_bytes()[:8192]
    sha = meta_of_sh(tool)["payload_sha256"]
    assert f"\nPORTENV_PAYLOAD_SHA256={sha}\n".encode() in head
    assert re.search(rb"\nPORTENV_ENTRY='hello-py +'\n", head)


def meta_of_sh(file: Path) -> dict[str, str]:
    offset = int(re.findall(rb"PORTENV_EMBEDDED_OFFSET=(\d{10})", file.read_bytes()[:8192])[0])
    block = file.read_bytes()[offset + 512 : offset + 4608].decode()
    return dict(line.split("=", 1) for line in block.split("\n") if "=" in line)


@pytest.mark.parametrize(
    ("entry", "output", "first", "hint"),
    [
        (
            "no-such-tool",
            "tool.sh",
            "error: --entry no-such-tool: the environment's bin/ has no command no-such-tool",
            "  hint: its console scripts: ",
        ),
        ("hello-py", "env.tar", "error: --entry makes a runnable env.sh, not env.tar", "  hint: "),
        ("tool $(x)", "tool.sh", "error: --entry argument '$(x)' holds a character", "  hint: "),
    ],
    ids=["missing", "tar", "syntax"],
)
def test_bad_entry_is_refused_and_nothing_written(
    core_project: Path,
    tmp_path: Path,
    package_cache: Path,
    entry: str,
    output: str,
    first: str,
    hint: str,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    done = portenv(
        "pack",
        core_project,
        "-o",
        out / output,
        "--use-cache",
        package_cache,
        "--entry",
        entry,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[-2].startswith(first) and lines[-1].startswith(hint), done.stderr
    if entry == "no-such-tool":
        assert "hello-py" in lines[-1]
    assert list(out.iterdir()) == []

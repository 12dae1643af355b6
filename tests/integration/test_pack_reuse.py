"""Packing again from the sealed-prefix cache, and the zstd payload, through the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from tests.conftest import portenv
from tests.integration.test_pack import meta_of


def sealed_entries(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "sealed").iterdir() if not p.name.startswith("."))


def payload_bytes(archive: Path) -> tuple[str, bytes]:
    """The payload member's name and bytes."""
    with tarfile.open(archive) as outer:
        member = outer.getmembers()[1]
        data = outer.extractfile(member)
        assert data is not None
        return member.name, data.read()


def test_a_second_pack_reuses_the_sealed_env_with_the_same_bytes(
    core_project: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = portenv("pack", core_project, "-o", tmp_path / "1.tar", "--use-cache", cache)
    assert "reusing" not in first.stderr
    assert len(sealed_entries(cache)) == 1
    second = portenv("pack", core_project, "-o", tmp_path / "2.tar", "--use-cache", cache)
    assert "reusing the sealed environment" in second.stderr
    fresh = portenv(
        "pack", core_project, "-o", tmp_path / "3.tar", "--use-cache", cache, "--no-reuse"
    )
    assert "reusing" not in fresh.stderr
    original = (tmp_path / "1.tar").read_bytes()
    assert (tmp_path / "2.tar").read_bytes() == original
    assert (tmp_path / "3.tar").read_bytes() == original
    assert len(sealed_entries(cache)) == 1


def test_a_tampered_entry_is_detected_and_staged_again(core_project: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    portenv("pack", core_project, "-o", tmp_path / "good.tar", "--use-cache", cache)
    (entry,) = sealed_entries(cache)
    victim = entry / "prefix" / ".portenv" / "relocate.py"
    data = victim.read_bytes()
    victim.write_bytes(data.replace(b"import", b"imp0rt", 1))  # same size, other content
    kept = portenv("pack", core_project, "-o", tmp_path / "kept.tar", "--use-cache", cache)
    assert "changed" not in kept.stderr, "the kept payload is copied: the prefix is not read"
    assert (tmp_path / "kept.tar").read_bytes() == (tmp_path / "good.tar").read_bytes()
    shutil.rmtree(entry / "payloads")  # without it, the prefix is tarred again and checked
    again = portenv("pack", core_project, "-o", tmp_path / "again.tar", "--use-cache", cache)
    assert "changed on disk; staging it again" in again.stderr
    assert (tmp_path / "again.tar").read_bytes() == (tmp_path / "good.tar").read_bytes()
    (entry,) = sealed_entries(cache)
    assert (entry / "prefix" / ".portenv" / "relocate.py").read_bytes() == data
    third = portenv("pack", core_project, "-o", tmp_path / "third.tar", "--use-cache", cache)
    assert "reusing" in third.stderr and "changed" not in third.stderr


def test_a_kept_payload_is_copied_checked_and_kept_per_codec_and_level(
    core_project: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    portenv("pack", core_project, "-o", tmp_path / "good.tar", "--use-cache", cache)
    (entry,) = sealed_entries(cache)
    kept = entry / "payloads" / "zstd-10.bin"  # the default codec and level
    payload = payload_bytes(tmp_path / "good.tar")[1]
    assert kept.read_bytes() == payload
    damaged = bytearray(payload)
    damaged[len(damaged) // 2] ^= 0xFF
    kept.write_bytes(bytes(damaged))
    portenv("pack", core_project, "-o", tmp_path / "again.tar", "--use-cache", cache)
    assert (tmp_path / "again.tar").read_bytes() == (tmp_path / "good.tar").read_bytes()
    assert kept.read_bytes() == payload, "the damaged copy was replaced by the fresh payload"
    portenv("pack", core_project, "-o", tmp_path / "z.tar", "--use-cache", cache, "--level", "1")
    assert sorted(p.name for p in (entry / "payloads").iterdir()) == [
        "zstd-1.bin",
        "zstd-1.json",
        "zstd-10.bin",
        "zstd-10.json",
    ]
    assert (entry / "payloads" / "zstd-1.bin").read_bytes() == payload_bytes(tmp_path / "z.tar")[1]


def test_zstd_payload_holds_the_same_tar_and_unpacks(
    core_project: Path, package_cache: Path, tmp_path: Path
) -> None:
    gz, zst = tmp_path / "gz.tar", tmp_path / "zst.tar"
    portenv("pack", core_project, "-o", gz, "--use-cache", package_cache, "--compression", "gzip")
    portenv("pack", core_project, "-o", zst, "--use-cache", package_cache)  # the default
    assert meta_of(zst)["compression"] == "zstd" and meta_of(gz)["compression"] == "gzip"
    name, payload = payload_bytes(zst)
    assert name == "portenv/payload.tar.zst"
    assert hashlib.sha256(payload).hexdigest() == meta_of(zst)["payload_sha256"]
    tar_from_zstd = subprocess.run(["zstd", "-dc"], input=payload, capture_output=True, check=True)
    tar_from_gzip = subprocess.run(
        ["gzip", "-dc"], input=payload_bytes(gz)[1], capture_output=True, check=True
    )
    assert tar_from_zstd.stdout == tar_from_gzip.stdout, "the codec changes nothing inside"
    info = portenv("unpack", zst, "--info").stdout.splitlines()
    assert "compression=zstd" in info and f"payload_size={len(payload)}" in info
    listed = portenv("unpack", zst, "--list").stdout
    assert listed == portenv("unpack", gz, "--list").stdout
    assert listed.startswith("conda ") and "\nconda python " in "\n" + listed
    assert not (tmp_path / "out").exists()
    done = portenv("unpack", zst, "-o", tmp_path / "out")
    env = tmp_path / "out" / "env"
    assert f"unpacked {meta_of(zst)['files']} files into {env}" in done.stderr
    assert (env / ".portenv" / "manifest.json").is_file()


def test_a_level_the_codec_lacks_is_refused_before_any_work(
    core_project: Path, tmp_path: Path
) -> None:
    done = portenv("pack", core_project, "-o", tmp_path / "x.sh", "--level", "20", check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("error: --level 20 is not a zstd level\n  hint: zstd levels")
    assert not (tmp_path / "x.sh").exists()
    gzip6 = ("--compression", "gzip", "--level", "6")
    done = portenv("pack", core_project, "-o", tmp_path / "x.sh", *gzip6, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("error: --level 6 is not a gzip level\n  hint: gzip levels")
    assert not (tmp_path / "x.sh").exists()


def test_zstd_env_sh_unpacks_with_the_sh_unpacker(
    core_project: Path, package_cache: Path, tmp_path: Path
) -> None:
    """The writer's frame (window 2^27, long matching) is what `zstd -dc` takes by default."""
    env_sh = tmp_path / "zst.sh"
    portenv(
        "pack", core_project, "-o", env_sh, "--use-cache", package_cache, "--compression", "zstd"
    )
    done = subprocess.run(
        ["sh", str(env_sh), "-o", str(tmp_path / "out")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    env = tmp_path / "out" / "env"
    info = portenv("unpack", env_sh, "--info").stdout.splitlines()
    files = next(line.split("=")[1] for line in info if line.startswith("files="))
    assert "compression=zstd" in info
    assert f"unpacked {files} files into {env}" in done.stderr
    manifest = json.loads((env / ".portenv" / "manifest.json").read_text())
    assert manifest["prefix"] == str(env), "relocated to where it was unpacked"

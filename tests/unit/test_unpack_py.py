"""The host-side unpacker (portenv.unpack) and the pixi-pack source, on archives built here.

portenv archives are written with the real container writers around a tiny fake environment
(a text file, a script and a "binary" that hold the placeholder, a symlink); hostile payloads
are tar streams built member by member. pixi-pack folders hold fake package files: the source
only hashes them, so no real conda package is needed. Every refusal is checked to leave
nothing behind: not the destination, not the folders created for it, not a work folder.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import tarfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import zstandard

from portenv.errors import (
    CompatibilityError,
    HashMismatchError,
    InputError,
    OutputError,
    OutputExistsError,
    PortenvError,
    RelocationError,
)
from portenv.model import PackMeta, Subdir
from portenv.source.pixipack import PixiPackMetadata, is_pixi_pack, open_pixi_pack, read_metadata
from portenv.stage import make_placeholder
from portenv.unpack import UnpackRequest, archive_kind, describe, unpack
from portenv.unpack._host import HostFacts, version_at_least
from portenv.unpack._pixipack import activation_script, check_platform
from portenv.write.container import render_unpacker, write_container, write_self_extracting
from portenv.write.payload import write_payload
from portenv.write.unzstd import decompressor
from tests.support.hardening import record

MACHINE = platform.machine()
OTHER_ARCH = "aarch64" if MACHINE != "aarch64" else "x86_64"
PLACEHOLDER = make_placeholder(255)
DEAD_PID = 2**22 + 1
"""Above the largest pid_max Linux allows: never a live process."""
REGION = 300


# --- portenv archives ----------------------------------------------------------------------


def env_tree(root: Path, *, prefix: str = PLACEHOLDER, region: int = REGION) -> Path:
    """A fake environment: its files name `prefix`, as a sealed prefix's do."""
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "lib").mkdir()
    (root / ".portenv").mkdir()
    python = root / "bin" / "python3.12"
    python.write_text("#!/bin/sh\necho fake python\n")
    python.chmod(0o755)
    (root / "etc" / "conf").write_text(f"prefix={prefix}\n")
    tool = root / "bin" / "tool"
    tool.write_text(f"#!{prefix}/bin/python3.12\nprint(1)\n")
    tool.chmod(0o755)
    blob = prefix.encode() + b"/lib\0"
    (root / "lib" / "libx.so").write_bytes(b"\x7fELF" + blob + b"\0" * (region - len(blob)))
    (root / "lib" / "conf-link").symlink_to("../etc/conf")
    manifest = {
        "format": 1,
        "prefix": prefix,
        "prefix_max": 255,
        "python": "bin/python3.12",
        "files": [
            {"path": "bin/tool", "mode": "text"},
            {"path": "etc/conf", "mode": "text"},
            {"path": "lib/libx.so", "mode": "binary", "regions": [[4, region]]},
        ],
    }
    (root / ".portenv" / "manifest.json").write_text(json.dumps(manifest))
    return root


def payload_of(tree: Path, compression: str = "gzip") -> tuple[bytes, int]:
    """The compressed payload of a tree, and how many paths it holds."""
    buffer = io.BytesIO()
    write_payload(tree, buffer, compression=compression)
    return buffer.getvalue(), sum(len(d) + len(f) for _, d, f in os.walk(tree))


def write_archive(path: Path, payload: bytes, files: int, **overrides: object) -> Path:
    """An env.tar or env.sh (by suffix) around `payload`, its meta adjusted by `overrides`."""
    meta = PackMeta(
        platform="linux-64",
        arch=MACHINE,
        glibc_floor="2.17",
        unpacked_kib=64,
        files=files,
        prefix_max=255,
        python="bin/python3.12",
        payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        portenv_version="0.1.0",
    )
    meta = replace(meta, **overrides)  # type: ignore[arg-type]
    unzstd = b""
    if meta.compression == "zstd":  # the default archive carries its decompressor
        carried = decompressor(meta.arch)
        unzstd = carried.gz
        meta = replace(meta, unzstd_size=len(unzstd), unzstd_sha256=carried.sha256)
    wrap = write_self_extracting if path.suffix == ".sh" else write_container
    with path.open("wb") as sink:
        wrap(meta, io.BytesIO(payload), sink, unzstd)
    return path


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    payload, files = payload_of(env_tree(tmp_path / "tree"))
    return write_archive(tmp_path / "env.tar", payload, files)


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def refused(
    request: UnpackRequest, error: type[PortenvError], root: Path, text: str = ""
) -> PortenvError:
    """Unpacking raises `error` (mentioning `text`) and leaves `root` exactly as it was."""
    before = snapshot(root)
    with pytest.raises(error) as info:
        unpack(request)
    assert text in str(info.value)
    assert snapshot(root) == before
    return info.value


@pytest.mark.parametrize(
    ("suffix", "compression"), [(".tar", "gzip"), (".sh", "gzip"), (".tar", "zstd")]
)
def test_unpack_relocates_to_the_destination(tmp_path: Path, suffix: str, compression: str) -> None:
    payload, files = payload_of(env_tree(tmp_path / "tree"), compression)
    path = write_archive(tmp_path / f"env{suffix}", payload, files, compression=compression)
    assert archive_kind(path) == "portenv"
    result = unpack(UnpackRequest(path, tmp_path / "out" / "deeper"))
    dest = tmp_path / "out" / "deeper" / "env"
    assert (result.kind, result.path, result.files) == ("portenv", dest, files)
    assert (dest / "etc" / "conf").read_text() == f"prefix={dest}\n"
    assert (dest / "bin" / "tool").read_text().startswith(f"#!{dest}/bin/python3.12\n")
    binary = (dest / "lib" / "libx.so").read_bytes()
    assert binary[4 : 4 + REGION] == (f"{dest}/lib".encode() + b"\0" * REGION)[:REGION]
    assert os.readlink(dest / "lib" / "conf-link") == "../etc/conf"
    assert json.loads((dest / ".portenv" / "manifest.json").read_text())["prefix"] == str(dest)
    assert os.access(dest / "bin" / "python3.12", os.X_OK)
    assert sorted(os.listdir(dest.parent)) == ["env"], "no lock, work or old folder is left"


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_info_and_list_read_the_archive_and_write_nothing(tmp_path: Path, compression: str) -> None:
    tree = env_tree(tmp_path / "tree")
    (tree / ".portenv" / "packages.txt").write_text("conda python 3.12.1 h0\npypi idna 3.7\n")
    payload, files = payload_of(tree, compression)
    path = write_archive(tmp_path / "env.sh", payload, files, compression=compression)
    before = snapshot(tmp_path)
    info = describe(path, "info").splitlines()
    assert info[0] == "format=1" and f"compression={compression}" in info
    assert f"files={files}" in info
    assert describe(path, "list") == "conda python 3.12.1 h0\npypi idna 3.7\n"
    assert snapshot(tmp_path) == before
    data = bytearray(path.read_bytes())
    data[len(render_unpacker(embedded=True)) + 5120 + 10] ^= 0xFF  # a payload byte
    path.write_bytes(bytes(data))
    assert describe(path, "info").splitlines() == info
    with pytest.raises(HashMismatchError, match="the payload"):
        describe(path, "list")


def test_env_name_and_the_meta_default(tmp_path: Path) -> None:
    payload, files = payload_of(env_tree(tmp_path / "tree"))
    path = write_archive(tmp_path / "env.tar", payload, files, env_name="tools")
    assert unpack(UnpackRequest(path, tmp_path / "a")).path == tmp_path / "a" / "tools"
    named = unpack(UnpackRequest(path, tmp_path / "a", env_name="mine"))
    assert named.path == tmp_path / "a" / "mine"
    with pytest.raises(OutputError, match="bad environment name") as refused:
        unpack(UnpackRequest(path, tmp_path / "a", env_name="../x"))
    assert refused.value.exit_code == 5, "a destination problem, as in the sh unpacker"


def test_existing_destination_needs_force(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    unpack(UnpackRequest(archive, out))
    (out / "env" / "mark").write_text("old")
    error = refused(UnpackRequest(archive, out), OutputExistsError, tmp_path, "already exists")
    assert error.hint is not None and "--force" in error.hint
    unpack(UnpackRequest(archive, out, force=True))
    assert not (out / "env" / "mark").exists()
    assert sorted(os.listdir(out)) == ["env"]


def test_force_replaces_only_an_environment(archive: Path, tmp_path: Path) -> None:
    (tmp_path / "out" / "env").mkdir(parents=True)
    (tmp_path / "out" / "env" / "precious.txt").write_text("mine")
    request = UnpackRequest(archive, tmp_path / "out", force=True)
    refused(request, OutputError, tmp_path, "is not an environment")
    (tmp_path / "out" / "env" / "precious.txt").unlink()
    assert unpack(request).path == tmp_path / "out" / "env", "an empty folder may be replaced"


@pytest.mark.parametrize(
    ("overrides", "text"),
    [
        pytest.param({"arch": OTHER_ARCH}, f"built for {OTHER_ARCH}", id="architecture"),
        pytest.param({"glibc_floor": "99.0"}, "needs glibc >= 99.0", id="glibc-floor"),
    ],
)
def test_foreign_archive_is_refused_unless_unchecked(
    tmp_path: Path, overrides: dict[str, str], text: str
) -> None:
    payload, files = payload_of(env_tree(tmp_path / "tree"))
    path = write_archive(tmp_path / "env.tar", payload, files, **overrides)
    refused(UnpackRequest(path, tmp_path / "out"), CompatibilityError, tmp_path, text)
    result = unpack(UnpackRequest(path, tmp_path / "out", platform_check=False))
    assert (result.path / "etc" / "conf").read_text() == f"prefix={result.path}\n"


def test_damaged_payload_is_refused_before_writing(archive: Path, tmp_path: Path) -> None:
    data = bytearray(archive.read_bytes())
    data[5120 + 100] ^= 0xFF
    archive.write_bytes(bytes(data))
    refused(UnpackRequest(archive, tmp_path / "out"), HashMismatchError, tmp_path, "the payload")


@pytest.mark.parametrize(
    ("change", "text"),
    [
        pytest.param(lambda d: d[:5200], "is truncated", id="truncated"),
        pytest.param(lambda d: d.replace(b"format=1", b"format=2"), "format '2'", id="format"),
        pytest.param(lambda d: d.replace(b"files=", b"files=0"), "damaged meta", id="meta"),
        pytest.param(lambda d: b"\0" * 512 + d[512:], "neither a portenv", id="not-an-archive"),
        pytest.param(
            lambda d: d.replace(b"compression=gzip", b"compression=xz\n\n"),
            "uses compression 'xz'",
            id="unknown-codec",
        ),
        pytest.param(
            lambda d: d.replace(b"compression=gzip", b"compression=zstd"),
            "no zstd payload",
            id="member-of-another-codec",
        ),
    ],
)
def test_damaged_archive_is_refused(
    archive: Path, tmp_path: Path, change: Callable[[bytes], bytes], text: str
) -> None:
    archive.write_bytes(change(archive.read_bytes()))
    refused(UnpackRequest(archive, tmp_path / "out"), InputError, tmp_path, text)


def test_standalone_unpacker_is_not_an_archive(tmp_path: Path) -> None:
    script = tmp_path / "portenv-unpack"
    script.write_bytes(render_unpacker(embedded=False))
    refused(UnpackRequest(script, tmp_path / "out"), InputError, tmp_path, "without an archive")


@pytest.mark.parametrize(
    ("overrides", "text"),
    [
        pytest.param({"prefix_max": 12}, "accepts at most 12", id="too-long"),
        pytest.param({"unpacked_kib": 10**15}, "KiB free", id="no-space"),
    ],
)
def test_destination_checks(tmp_path: Path, overrides: dict[str, int], text: str) -> None:
    payload, files = payload_of(env_tree(tmp_path / "tree"))
    path = write_archive(tmp_path / "env.tar", payload, files, **overrides)
    refused(UnpackRequest(path, tmp_path / "out"), OutputError, tmp_path, text)


def test_bad_characters_in_the_destination(archive: Path, tmp_path: Path) -> None:
    request = UnpackRequest(archive, tmp_path / 'a"b')
    refused(request, OutputError, tmp_path, "holds a newline")


def test_relocation_failure_leaves_nothing(tmp_path: Path) -> None:
    """The region reserves 8 bytes for the short prefix `/p`: the real path cannot fit."""
    payload, files = payload_of(env_tree(tmp_path / "tree", prefix="/p", region=8))
    path = write_archive(tmp_path / "env.tar", payload, files)
    refused(UnpackRequest(path, tmp_path / "out" / "x"), RelocationError, tmp_path, "reserved")


def test_live_lock_is_respected_and_a_dead_one_taken_over(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    lock = out / ".portenv-lock.env"
    lock.mkdir(parents=True)
    (lock / "pid").write_text(f"{os.getppid()}\n")
    refused(UnpackRequest(archive, out), OutputError, tmp_path, "is running")
    (lock / "pid").write_text(f"{DEAD_PID}\n")
    leftover = out / f".portenv-tmp.env.{DEAD_PID}"
    leftover.mkdir()
    (leftover / "half").write_text("written by a killed unpack")
    unpack(UnpackRequest(archive, out))
    assert sorted(os.listdir(out)) == ["env"]


def test_interrupted_force_is_restored_by_the_next_unpack(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    unpack(UnpackRequest(archive, out))
    os.rename(out / "env", out / f".portenv-old.env.{DEAD_PID}")
    with pytest.raises(OutputExistsError):
        unpack(UnpackRequest(archive, out))
    assert (out / "env" / ".portenv").is_dir(), "the env a dead --force moved aside is back"
    assert sorted(os.listdir(out)) == ["env"]


# --- hostile payloads ----------------------------------------------------------------------


def _member(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def hostile(*members: tarfile.TarInfo, zstd: bool = False) -> tuple[bytes, int]:
    """A payload holding a plausible env, then `members` (regular ones get 4 bytes); gzip, or
    with `zstd` one zstd frame."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info in [_member("bin", tarfile.DIRTYPE), _member("etc", tarfile.DIRTYPE), *members]:
            data = b"evil" if info.isreg() else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    if zstd:
        return zstandard.ZstdCompressor().compress(buffer.getvalue()), 2 + len(members)
    return gzip.compress(buffer.getvalue(), mtime=0), 2 + len(members)


def _link(name: str, target: str) -> tarfile.TarInfo:
    return _member(name, tarfile.SYMTYPE, linkname=target)


Members = Callable[[Path], list[tarfile.TarInfo]]
HOSTILE = [
    pytest.param(lambda t: [_member("../evil")], "climbs out", id="dotdot"),
    pytest.param(lambda t: [_member("etc/../../evil")], "climbs out", id="dotdot-inside"),
    pytest.param(lambda t: [_member(str(t / "evil"))], "absolute path", id="absolute"),
    pytest.param(lambda t: [_link("etc/root", "/")], "absolute symlink", id="absolute-symlink"),
    pytest.param(lambda t: [_link("etc/up", "../../..")], "symlink out", id="symlink-out"),
    pytest.param(
        lambda t: [_link("etc/d", "."), _member("etc/d/evil")],
        "through a symlink",
        id="write-through-link",
    ),
    pytest.param(
        lambda t: [_member("a", tarfile.DIRTYPE), _link("a/l", "../b"), _link("m", "a/l/../..")],
        "refused by tarfile's data filter",
        id="chained-links-out",
    ),
    pytest.param(
        lambda t: [_member("a", tarfile.DIRTYPE), _link("m", "a/l/../.."), _link("a/l", "../b")],
        "resolves out of it",
        id="chained-links-out-later",
    ),
    pytest.param(
        lambda t: [_member("etc/h", tarfile.LNKTYPE, linkname="bin")], "hard link", id="hardlink"
    ),
    pytest.param(lambda t: [_member("etc/fifo", tarfile.FIFOTYPE)], "FIFO", id="fifo"),
    pytest.param(
        lambda t: [_member("etc/null", tarfile.CHRTYPE, devmajor=1, devminor=3)],
        "device",
        id="device",
    ),
    pytest.param(lambda t: [_member("bin/su", mode=0o4755)], "setuid", id="setuid"),
    pytest.param(lambda t: [_member("etc/x"), _member("etc/x")], "twice", id="duplicate"),
]


@pytest.mark.hardening
@pytest.mark.parametrize(("members", "text"), HOSTILE)
def test_hostile_payload_is_refused_and_nothing_written(
    request: pytest.FixtureRequest, tmp_path: Path, members: Members, text: str
) -> None:
    payload, files = hostile(*members(tmp_path))
    path = write_archive(tmp_path / "env.tar", payload, files)
    refused(UnpackRequest(path, tmp_path / "out" / "x"), InputError, tmp_path, text)
    assert not (tmp_path / "evil").exists()
    case = request.node.callspec.id
    record(
        "hostile archive", f"{case} (portenv unpack, env.tar payload)", "refused", outside_writes=0
    )


def test_manifest_naming_a_file_outside_is_refused(tmp_path: Path) -> None:
    tree = env_tree(tmp_path / "tree")
    outside = tmp_path / "victim.txt"
    outside.write_text(f"prefix={PLACEHOLDER}\n")
    manifest = json.loads((tree / ".portenv" / "manifest.json").read_text())
    manifest["files"].append({"path": "../../victim.txt", "mode": "text"})
    (tree / ".portenv" / "manifest.json").write_text(json.dumps(manifest))
    payload, files = payload_of(tree)
    path = write_archive(tmp_path / "env.tar", payload, files)
    refused(UnpackRequest(path, tmp_path / "out"), InputError, tmp_path, "not a file inside")
    assert outside.read_text() == f"prefix={PLACEHOLDER}\n"


# --- host facts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "floor", "ok"),
    [
        ("2.36", "2.28", True),
        ("2.9", "2.10", False),
        ("2.10", "2.9", True),
        ("2.36", "2.36", True),
        ("2.36", "2.36.1", False),
        ("3", "2.99", True),
    ],
)
def test_versions_compare_number_by_number(version: str, floor: str, ok: bool) -> None:
    assert version_at_least(version, floor) is ok


def test_host_facts_of_this_machine() -> None:
    host = HostFacts.detect()
    assert host.machine == MACHINE
    assert host.glibc is not None and version_at_least(host.glibc, "2.17")
    assert host.subdir is not None


# --- pixi-pack folders ---------------------------------------------------------------------


def pixi_pack(
    root: Path,
    *,
    platform: str = "linux-64",
    version: object = "1",
    packages: dict[str, bytes] | None = None,
    subdir: str = "linux-64",
    hashes: str = "sha256",
) -> Path:
    """A pixi-pack folder whose repodata lists each fake package with its real hashes."""
    packages = {"foo-1.0-h0_0.conda": b"fake package"} if packages is None else packages
    folder = root / "channel" / subdir
    folder.mkdir(parents=True)
    (root / "pixi-pack.json").write_text(
        json.dumps({"version": version, "pixi-pack-version": "0.7.0", "platform": platform})
    )
    records = {}
    for file_name, data in packages.items():
        (folder / file_name).write_bytes(data)
        name, version_, build = file_name.removesuffix(".conda").rsplit("-", 2)
        record: dict[str, object] = {
            "name": name,
            "version": version_,
            "build": build,
            "build_number": 0,
            "depends": [],
            "subdir": subdir,
            "size": len(data),
        }
        if hashes == "sha256":
            record["sha256"] = hashlib.sha256(data).hexdigest()
        record["md5"] = hashlib.md5(data).hexdigest()
        records[file_name] = record
    repodata = {"info": {"subdir": subdir}, "packages": {}, "packages.conda": records}
    (folder / "repodata.json").write_text(json.dumps(repodata))
    return root


def test_pixi_pack_folder_is_read_and_verified(tmp_path: Path) -> None:
    root = pixi_pack(tmp_path / "pack")
    assert is_pixi_pack(root) and archive_kind(root) == "pixi-pack"
    assert read_metadata(root) == PixiPackMetadata("1", Subdir("linux-64"), "0.7.0")
    pack = open_pixi_pack(root, tmp_path / "scratch")
    assert [f.package.name for f in pack.conda] == ["foo"]
    assert pack.conda[0].package.url == "channel/linux-64/foo-1.0-h0_0.conda"
    assert pack.conda[0].path == root.resolve() / "channel/linux-64/foo-1.0-h0_0.conda"
    assert pack.wheels == ()
    assert not (tmp_path / "scratch").exists(), "a folder is read in place"


def test_pixi_pack_tar_is_extracted_with_checks(tmp_path: Path) -> None:
    root = pixi_pack(tmp_path / "pack")
    tar = tmp_path / "environment.tar"
    with tarfile.open(tar, "w") as archive:
        for path in sorted(root.rglob("*")):
            archive.add(path, path.relative_to(root).as_posix(), recursive=False)
    assert archive_kind(tar) == "pixi-pack"
    pack = open_pixi_pack(tar, tmp_path / "scratch")
    assert pack.root == (tmp_path / "scratch").resolve()
    with tarfile.open(tar, "a") as archive:
        archive.addfile(_link("channel/evil", "/etc"))
    with pytest.raises(InputError, match="symlink, which this format never has"):
        open_pixi_pack(tar, tmp_path / "scratch2")


PIXI_PACK_HOSTILE = [
    pytest.param(lambda t: [_member("../evil")], "climbs out", id="dotdot"),
    pytest.param(lambda t: [_member(str(t / "evil"))], "absolute path", id="absolute"),
    pytest.param(lambda t: [_link("channel/l", "../..")], "symlink", id="symlink"),
    pytest.param(
        lambda t: [_member("channel/h", tarfile.LNKTYPE, linkname="pixi-pack.json")],
        "hard link",
        id="hardlink",
    ),
    pytest.param(lambda t: [_member("channel/fifo", tarfile.FIFOTYPE)], "FIFO", id="fifo"),
    pytest.param(
        lambda t: [_member("channel/null", tarfile.CHRTYPE, devmajor=1, devminor=3)],
        "device",
        id="device",
    ),
    pytest.param(lambda t: [_member("channel/x", mode=0o4755)], "setuid", id="setuid"),
    pytest.param(lambda t: [_member("pixi-pack.json")], "twice", id="duplicate"),
]


@pytest.mark.hardening
@pytest.mark.parametrize(("members", "text"), PIXI_PACK_HOSTILE)
def test_hostile_pixi_pack_tar_is_refused(
    request: pytest.FixtureRequest, tmp_path: Path, members: Members, text: str
) -> None:
    root = pixi_pack(tmp_path / "pack")
    tar = tmp_path / "environment.tar"
    with tarfile.open(tar, "w", format=tarfile.GNU_FORMAT) as archive:
        for path in sorted(root.rglob("*")):
            archive.add(path, path.relative_to(root).as_posix(), recursive=False)
        for info in members(tmp_path):
            data = b"evil" if info.isreg() else b""
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    error = refused(UnpackRequest(tar, tmp_path / "out"), InputError, tmp_path, text)
    assert str(error).startswith("pixi-pack archive environment.tar holds "), str(error)
    assert not (tmp_path / "evil").exists()
    case = request.node.callspec.id
    record(
        "hostile archive", f"{case} (portenv unpack, pixi-pack tar)", "refused", outside_writes=0
    )


def test_md5_is_used_when_the_record_has_no_sha256(tmp_path: Path) -> None:
    root = pixi_pack(tmp_path / "pack", hashes="md5")
    assert open_pixi_pack(root, tmp_path / "s").conda[0].package.sha256 is None
    (root / "channel/linux-64/foo-1.0-h0_0.conda").write_bytes(b"other bytes")
    with pytest.raises(HashMismatchError, match="expected md5:"):
        open_pixi_pack(root, tmp_path / "s")


def test_package_whose_bytes_changed_is_refused(tmp_path: Path) -> None:
    root = pixi_pack(tmp_path / "pack")
    (root / "channel/linux-64/foo-1.0-h0_0.conda").write_bytes(b"tampered package")
    with pytest.raises(HashMismatchError) as info:
        open_pixi_pack(root, tmp_path / "s")
    assert str(info.value).startswith("hash mismatch for foo: expected sha256:")
    assert "channel/linux-64/foo-1.0-h0_0.conda" in str(info.value)


@pytest.mark.parametrize(
    ("build", "text"),
    [
        pytest.param(lambda r: pixi_pack(r, version="2"), "format '2'", id="format"),
        pytest.param(lambda r: pixi_pack(r, subdir="osx-64"), "another platform", id="subdir"),
        pytest.param(
            lambda r: (pixi_pack(r), (r / "channel/linux-64/foo-1.0-h0_0.conda").unlink()),
            "missing",
            id="missing-file",
        ),
        pytest.param(
            lambda r: (
                pixi_pack(r),
                (r / "pypi").mkdir(),
                (r / "pypi/x-1.0-py3-none-any.whl").touch(),
            ),
            "no conda python",
            id="wheel-without-python",
        ),
    ],
)
def test_pixi_pack_layout_problems(
    tmp_path: Path, build: Callable[[Path], object], text: str
) -> None:
    root = tmp_path / "pack"
    build(root)
    with pytest.raises(InputError, match=text):
        open_pixi_pack(root, tmp_path / "s")


def test_pixi_pack_wheels_must_fit(tmp_path: Path) -> None:
    root = pixi_pack(tmp_path / "pack", packages={"python-3.12.1-h0_0.conda": b"py"})
    (root / "pypi").mkdir()
    (root / "pypi" / "native-1.0-cp39-cp39-manylinux2014_aarch64.whl").write_bytes(b"x")
    with pytest.raises(InputError, match=r"do not fit CPython 3\.12"):
        open_pixi_pack(root, tmp_path / "s")
    (root / "pypi" / "native-1.0-cp39-cp39-manylinux2014_aarch64.whl").unlink()
    (root / "pypi" / "tool-1.0-py3-none-any.whl").write_bytes(b"x")
    [wheel] = open_pixi_pack(root, tmp_path / "s").wheels
    assert (wheel.package.name, wheel.package.version, wheel.package.kind) == (
        "tool",
        "1.0",
        "wheel",
    )
    assert wheel.sha256 == hashlib.sha256(b"x").hexdigest()
    assert not wheel.package.is_direct, "installed like --find-links: no direct_url.json"


def test_platform_check_is_pixi_unpacks_rule() -> None:
    metadata = PixiPackMetadata("1", Subdir("linux-aarch64"), None)
    check_platform(metadata, HostFacts("aarch64", "2.36", musl=False))
    with pytest.raises(CompatibilityError, match="is for linux-aarch64, this machine is linux-64"):
        check_platform(metadata, HostFacts("x86_64", "2.36", musl=False))


def test_wrong_platform_refused_before_writing(tmp_path: Path) -> None:
    root = pixi_pack(tmp_path / "pack", platform="linux-ppc64le", subdir="linux-ppc64le")
    if HostFacts.detect().subdir == "linux-ppc64le":
        pytest.skip("this machine is the pack's platform")
    error = refused(UnpackRequest(root, tmp_path / "out"), CompatibilityError, tmp_path)
    assert error.hint is not None and "--platform-check off" in error.hint


def test_activation_script_follows_pixi_unpack(tmp_path: Path) -> None:
    prefix = tmp_path / "work" / "env"
    (prefix / "etc" / "conda" / "activate.d").mkdir(parents=True)
    (prefix / "etc" / "conda" / "activate.d" / "b.sh").write_text("export B=1\n")
    (prefix / "etc" / "conda" / "activate.d" / "a.sh").write_text("export A=1\n")
    (prefix / "etc" / "conda" / "activate.d" / "c.csh").write_text("setenv C 1\n")
    (prefix / "conda-meta").mkdir()
    (prefix / "conda-meta" / "state").write_text(json.dumps({"env_vars": {"MODE": "prod it"}}))
    final = Path("/opt/my envs/env")
    assert activation_script(prefix, final).splitlines() == [
        'export PATH="/opt/my envs/env/bin:${PATH}"',
        "export CONDA_SHLVL=1",
        "export CONDA_PREFIX='/opt/my envs/env'",
        "export MODE='prod it'",
        ". '/opt/my envs/env/etc/conda/activate.d/a.sh'",
        ". '/opt/my envs/env/etc/conda/activate.d/b.sh'",
    ]

"""Payload and container writers: reproducible bytes at the offsets docs/format.md promises."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import os
import re
import subprocess
import tarfile
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
import zstandard

from portenv.errors import InputError, OutputError
from portenv.model import PackMeta
from portenv.write import atomic_output, writer_for
from portenv.write.codecs import CHUNK, CODECS, ZSTD_WINDOW_LOG, PayloadInfo
from portenv.write.container import (
    META_NAME,
    META_SIZE,
    PAYLOAD_NAME,
    PAYLOAD_OFFSET,
    container_head,
    container_tail,
    meta_block,
    payload_cuts,
    render_unpacker,
    write_container,
    write_self_extracting,
)
from portenv.write.entry import check_entry, parse_entry
from portenv.write.payload import write_payload

META = PackMeta(
    platform="linux-64",
    arch="x86_64",
    glibc_floor="2.28",
    unpacked_kib=10,
    files=3,
    prefix_max=255,
    python="bin/python3.12",
    payload_size=0,
)


def hash_list(tar: bytes) -> str:
    """The tar digest the writer records: sha256 over the sha256 of each 4 MiB slice."""
    slices = (tar[i : i + CHUNK] for i in range(0, len(tar), CHUNK))
    return hashlib.sha256(b"".join(hashlib.sha256(s).digest() for s in slices)).hexdigest()


def make_tree(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "bin" / "tool").chmod(0o4775)  # setuid and group-write are normalized away
    (root / "bin" / "link").symlink_to("tool")
    (root / "lib").mkdir()
    (root / "lib" / "big.bin").write_bytes(os.urandom(CHUNK + 12345))
    (root / "a-b").write_text("x")


def test_payload_is_reproducible_and_normalized(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    first, second = io.BytesIO(), io.BytesIO()
    info1 = write_payload(tree, first, jobs=1)
    os.utime(tree / "bin" / "tool", (1, 1))
    info2 = write_payload(tree, second, level=CODECS["gzip"].default_level, jobs=3)
    assert first.getvalue() == second.getvalue(), "mtime and thread count change nothing"
    assert info1 == info2
    assert info1.tar_sha256 == hash_list(gzip.decompress(first.getvalue()))
    assert info1.sha256 == hashlib.sha256(first.getvalue()).hexdigest()
    assert first.getvalue()[4:8] == b"\0\0\0\0", "gzip mtime must be 0"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(first.getvalue()))) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert list(members) == ["a-b", "bin", "bin/link", "bin/tool", "lib", "lib/big.bin"]
    assert members["bin/tool"].mode == 0o755
    assert members["a-b"].mode == 0o644
    assert members["bin/link"].issym() and members["bin/link"].linkname == "tool"
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in members.values())


def test_payload_is_several_gzip_members_that_gzip_reads_as_one(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    out = io.BytesIO()
    write_payload(tree, out)
    assert out.getvalue().count(b"\x1f\x8b\x08") >= 2
    assert len(gzip.decompress(out.getvalue())) > CHUNK


def test_gzip_members_are_recorded_where_each_one_starts(tmp_path: Path) -> None:
    """Each recorded start is a gzip member of its own that decompresses to its tar slice."""
    tree = tmp_path / "tree"
    make_tree(tree)
    (tree / "lib" / "more.bin").write_bytes(os.urandom(2 * CHUNK))
    out = io.BytesIO()
    info = write_payload(tree, out, jobs=2)
    data, tar = out.getvalue(), gzip.decompress(out.getvalue())
    assert info.tar_size == len(tar)
    assert len(info.members) == -(-len(tar) // CHUNK) - 1 >= 3
    bounds = [(0, 0), *info.members, (info.size, info.tar_size)]
    for (packed, unpacked), (packed_end, unpacked_end) in itertools.pairwise(bounds):
        assert unpacked % CHUNK == 0
        piece = zlib.decompressobj(31)
        assert piece.decompress(data[packed:packed_end]) == tar[unpacked:unpacked_end]
        assert piece.eof and not piece.unused_data, "a start is exactly where a member begins"


def test_payload_cuts_offer_near_equal_shares() -> None:
    members = tuple((1000 * k, CHUNK * k) for k in range(1, 48))
    cuts = payload_cuts(PayloadInfo(48_000, "x", members=members, tar_size=48 * CHUNK - 5))
    assert cuts[-1] == (48_000, 48 * CHUNK - 5), "the last cut is the end"
    assert cuts[:-1] == tuple((3000 * k, 3 * CHUNK * k) for k in range(1, 16))
    two = ((100, CHUNK), (200, 2 * CHUNK))
    few = payload_cuts(PayloadInfo(300, "x", members=two, tar_size=3 * CHUNK))
    assert few == ((100, CHUNK), (200, 2 * CHUNK), (300, 3 * CHUNK)), "no cut twice"
    assert payload_cuts(PayloadInfo(99, "x", tar_size=CHUNK)) == (), "one member: nothing to cut"


def test_meta_names_its_cuts_only_when_there_are_some() -> None:
    lines = meta_block(replace(META, payload_cuts=((5, 7), (9, 14)))).decode().split("\n")
    assert "payload_cuts=5:7 9:14" in lines
    assert not any(line.startswith("payload_cuts=") for line in meta_block(META).decode().split())


def test_zstd_payload_has_no_cuts(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    info = write_payload(tree, io.BytesIO(), compression="zstd", level=1)
    assert info.members == () and info.tar_size > CHUNK


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_gzip_payload_is_plain_gzip_to_gzip_and_busybox(tmp_path: Path, level: int) -> None:
    """ISA-L's members, one after another, decompress with GNU gzip and busybox gzip."""
    tree = tmp_path / "tree"
    make_tree(tree)
    out = io.BytesIO()
    info = write_payload(tree, out, level=level)
    (tmp_path / "p.tar.gz").write_bytes(out.getvalue())
    for tool in (["gzip", "-dc"], ["busybox", "gzip", "-dc"]):
        result = subprocess.run(
            [*tool, str(tmp_path / "p.tar.gz")], capture_output=True, check=True
        )
        assert hash_list(result.stdout) == info.tar_sha256, tool
    listed = subprocess.run(
        ["tar", "-tzf", str(tmp_path / "p.tar.gz")], capture_output=True, text=True, check=True
    )
    assert listed.stdout.split() == ["a-b", "bin/", "bin/link", "bin/tool", "lib/", "lib/big.bin"]


def test_zstd_payload_round_trips_and_is_deterministic(tmp_path: Path) -> None:
    """One zstd frame: the same bytes on 1 or 2 threads, and `zstd -d` reads it as it is."""
    tree = tmp_path / "tree"
    make_tree(tree)
    (tree / "lib" / "more.bin").write_bytes(os.urandom(1 << 20) * 20)  # beyond one job
    one, two = io.BytesIO(), io.BytesIO()
    info = write_payload(tree, one, compression="zstd", level=3, jobs=1)
    assert write_payload(tree, two, compression="zstd", level=3, jobs=2) == info
    assert one.getvalue() == two.getvalue()
    assert info.sha256 == hashlib.sha256(one.getvalue()).hexdigest()
    assert len(one.getvalue()) < 3 * CHUNK, "the repeated megabyte is found again (long window)"
    params = zstandard.get_frame_parameters(one.getvalue())
    assert params.window_size <= 1 << ZSTD_WINDOW_LOG and params.has_checksum
    (tmp_path / "p.tar.zst").write_bytes(one.getvalue())
    result = subprocess.run(
        ["zstd", "-dc", str(tmp_path / "p.tar.zst")], capture_output=True, check=True
    )
    assert hash_list(result.stdout) == info.tar_sha256
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        assert archive.extractfile("lib/more.bin").read() == (tree / "lib/more.bin").read_bytes()  # type: ignore[union-attr]


def test_level_outside_the_codec_is_refused() -> None:
    with pytest.raises(InputError, match="--level 6 is not a gzip level"):
        write_payload(Path("."), io.BytesIO(), level=6)
    with pytest.raises(InputError, match="unknown compression 'xz'"):
        write_payload(Path("."), io.BytesIO(), compression="xz")


def test_container_tail_is_what_tarfile_writes() -> None:
    """The in-place writer's head and tail give the bytes tarfile gives for the same members."""
    for size in (0, 1, 511, 512, 5000, 10240 - PAYLOAD_OFFSET):
        payload = os.urandom(size)
        meta = PackMeta(**{**META.__dict__, "payload_size": size})
        ours = container_head(meta) + payload + container_tail(size)
        theirs = io.BytesIO()
        with tarfile.open(fileobj=theirs, mode="w", format=tarfile.USTAR_FORMAT) as archive:
            for name, data in ((META_NAME, meta_block(meta)), (PAYLOAD_NAME, payload)):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode, info.uname, info.gname = (
                    len(data),
                    0,
                    0o644,
                    "",
                    "",
                )
                archive.addfile(info, io.BytesIO(data))
        assert ours == theirs.getvalue(), size


def test_zstd_payload_member_is_named_for_its_codec() -> None:
    meta = PackMeta(**{**META.__dict__, "compression": "zstd", "payload_size": 3})
    head = container_head(meta)
    assert len(head) == PAYLOAD_OFFSET
    assert head[PAYLOAD_OFFSET - 512 :].startswith(b"portenv/payload.tar.zst\0")
    assert b"\ncompression=zstd\n" in head


def test_container_layout_matches_the_format(tmp_path: Path) -> None:
    payload = b"PAYLOAD" * 100
    meta = PackMeta(**{**META.__dict__, "payload_size": len(payload), "payload_sha256": "ab"})
    sink = io.BytesIO()
    write_container(meta, io.BytesIO(payload), sink)
    data = sink.getvalue()
    assert data[512 : 512 + META_SIZE].startswith(b"format=1\n")
    assert data[PAYLOAD_OFFSET : PAYLOAD_OFFSET + len(payload)] == payload
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert archive.getnames() == [META_NAME, PAYLOAD_NAME]


def test_meta_block_lines_and_size() -> None:
    block = meta_block(META)
    assert len(block) == META_SIZE
    lines = block.decode().split("\n")
    assert "arch=x86_64" in lines and "prefix_max=255" in lines and "python=bin/python3.12" in lines


def test_self_extracting_header_is_padded_and_records_its_size() -> None:
    header = render_unpacker(embedded=True)
    assert len(header) % 512 == 0
    assert f"PORTENV_EMBEDDED_OFFSET={len(header):010d}".encode() in header
    standalone = render_unpacker(embedded=False)
    assert b"PORTENV_EMBEDDED_OFFSET=0000000000" in standalone
    sink, plain = io.BytesIO(), io.BytesIO()
    write_self_extracting(META, io.BytesIO(b""), sink)
    write_container(META, io.BytesIO(b""), plain)
    assert sink.getvalue()[len(header) :] == plain.getvalue(), (
        "env.sh must end with env.tar's bytes"
    )


def test_unknown_suffix_is_refused() -> None:
    with pytest.raises(OutputError, match="unknown output type"):
        writer_for(Path("env.zip"))


def test_atomic_output_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.sh"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as stream:
        stream.write(b"new")
        msg = "interrupted"
        raise RuntimeError(msg)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.sh"]


def test_header_holds_the_payload_sha256_and_the_entry() -> None:
    sha = "ab" * 32
    plain = render_unpacker(embedded=True)
    header = render_unpacker(embedded=True, payload_sha256=sha, entry=" python  -m  app ")
    assert len(header) == len(plain)
    assert f"\nPORTENV_PAYLOAD_SHA256={sha}\n".encode() in header
    assert re.search(rb"\nPORTENV_ENTRY='python -m app {107}'\n", header)
    assert b"\nPORTENV_PAYLOAD_SHA256=" + b"0" * 64 + b"\n" in plain
    with pytest.raises(ValueError, match=r"only an env\.sh header"):
        render_unpacker(embedded=False, entry="python")
    with pytest.raises(ValueError, match="not a sha256"):
        render_unpacker(embedded=True, payload_sha256="AB" * 32)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("", "--entry needs a command"),
        ("bin/tool", "must start with a command name of the environment's bin/"),
        ("-m x", "must start with a command name"),
        ("tool $(id)", "holds a character that would need quoting in sh"),
        ("tool 'a'", "holds a character that would need quoting in sh"),
        ("tool " + "x" * 120, "at most 120 fit the header"),
    ],
    ids=["empty", "path", "option", "dollar", "quote", "long"],
)
def test_entry_forms_the_header_cannot_hold(entry: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        parse_entry(entry)


def test_entry_must_be_in_the_environment(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    for name, text in [("app", "#!/portenv_placehold/bin/python3.12\n"), ("data", "x")]:
        (tmp_path / "bin" / name).write_text(text)
        (tmp_path / "bin" / name).chmod(0o755)
    check_entry(tmp_path, "app --x")
    with pytest.raises(InputError) as refused:
        check_entry(tmp_path, "ap")
    assert refused.value.message == "--entry ap: the environment's bin/ has no command ap"
    assert refused.value.hint == "its console scripts: app; or --entry python"
    (tmp_path / "bin" / "data").chmod(0o644)
    with pytest.raises(InputError, match="has no command data"):
        check_entry(tmp_path, "data")

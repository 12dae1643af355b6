"""Payload and container writers: reproducible bytes at the offsets docs/format.md promises."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from portenv.errors import OutputError
from portenv.model import PackMeta
from portenv.write import atomic_output, writer_for
from portenv.write.container import (
    META_NAME,
    META_SIZE,
    PAYLOAD_NAME,
    PAYLOAD_OFFSET,
    meta_block,
    render_unpacker,
    write_container,
    write_self_extracting,
)
from portenv.write.payload import CHUNK, write_payload

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
    info1 = write_payload(tree, first)
    os.utime(tree / "bin" / "tool", (1, 1))
    info2 = write_payload(tree, second, level=6)
    assert first.getvalue() == second.getvalue()
    assert info1 == info2
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

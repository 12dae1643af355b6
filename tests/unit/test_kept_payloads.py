"""Kept payloads: copied only when they are the bytes recorded for the tar asked for."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from portenv.write.codecs import PayloadInfo
from portenv.write.kept import KeptPayloads

PAYLOAD = b"compressed bytes " * 1000
INFO = PayloadInfo(len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest(), "t" * 64, ((10, 20),), 99)


def kept_in(folder: Path) -> KeptPayloads:
    store = KeptPayloads(folder)
    source = io.BytesIO(b"HEAD" + PAYLOAD + b"TAIL")
    store.keep(source, 4, INFO, compression="gzip", level=None)
    return store


def test_a_kept_payload_is_copied_with_its_info(tmp_path: Path) -> None:
    sink = io.BytesIO(b"head")
    sink.seek(4)
    info = kept_in(tmp_path).copy_into(sink, compression="gzip", level=2, tar_sha256="t" * 64)
    assert info == INFO
    assert sink.getvalue() == b"head" + PAYLOAD


def test_another_tar_or_level_finds_nothing(tmp_path: Path) -> None:
    store = kept_in(tmp_path)
    sink = io.BytesIO()
    assert store.copy_into(sink, compression="gzip", level=3, tar_sha256="t" * 64) is None
    assert store.copy_into(sink, compression="gzip", level=2, tar_sha256="u" * 64) is None
    assert sink.getvalue() == b""
    assert not list(tmp_path.glob("gzip-2.*")), "a payload of another tar is dropped"


def test_damaged_bytes_are_dropped_and_the_sink_restored(tmp_path: Path) -> None:
    store = kept_in(tmp_path)
    (tmp_path / "gzip-2.bin").write_bytes(PAYLOAD[:-1] + b"!")
    sink = io.BytesIO(b"head")
    sink.seek(4)
    assert store.copy_into(sink, compression="gzip", level=2, tar_sha256="t" * 64) is None
    assert sink.getvalue() == b"head" and sink.tell() == 4
    assert not (tmp_path / "gzip-2.bin").exists()


def test_keeping_into_a_folder_that_cannot_be_made_is_no_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    store = KeptPayloads(tmp_path / "file" / "payloads")
    store.keep(io.BytesIO(PAYLOAD), 0, INFO, compression="gzip", level=2)
    assert store.copy_into(io.BytesIO(), compression="gzip", level=2, tar_sha256="t" * 64) is None


def test_keeping_leaves_exactly_the_two_files(tmp_path: Path) -> None:
    kept_in(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gzip-2.bin", "gzip-2.json"]
    assert (tmp_path / "gzip-2.bin").read_bytes() == PAYLOAD


def test_a_payload_that_ends_early_is_not_kept_at_all(tmp_path: Path) -> None:
    """The copy fails halfway: no part of it, no temp file, and the older record stays."""
    kept_in(tmp_path)
    store = KeptPayloads(tmp_path)
    store.keep(io.BytesIO(PAYLOAD[:100]), 0, INFO, compression="gzip", level=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gzip-2.bin", "gzip-2.json"]
    assert (tmp_path / "gzip-2.bin").read_bytes() == PAYLOAD

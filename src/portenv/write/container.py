"""The outer tar (meta block + payload) and the self-extracting sh header around it."""

from __future__ import annotations

import re
import shutil
import tarfile
from importlib import resources
from typing import BinaryIO

from portenv.format import META_NAME, META_SIZE, PAYLOAD_OFFSET, UNZSTD_NAME
from portenv.model import PackMeta
from portenv.write.codecs import PayloadInfo, codec
from portenv.write.entry import ENTRY_WIDTH, parse_entry
from portenv.write.payload import tar_end
from portenv.write.unzstd import licence

__all__ = [
    "META_NAME",
    "META_SIZE",
    "PAYLOAD_NAME",
    "PAYLOAD_OFFSET",
    "container_head",
    "container_tail",
    "payload_cuts",
    "payload_name",
    "render_unpacker",
    "self_extracting_size",
    "unzstd_offset",
    "write_container",
    "write_self_extracting",
]

PAYLOAD_NAME = "portenv/payload.tar.gz"
_OFFSET_LINE = "PORTENV_EMBEDDED_OFFSET=0000000000"
_SIZE_FIELD = "PORTENV_SIZE=0;" + " " * 16
"""Line 2's size field: ``PORTENV_SIZE=N;`` padded with spaces to a fixed width, so that writing
the real size moves no byte. 0 (the source file) skips the check."""
_NO_SHA256 = "0" * 64
_SHA256_FIELD = "PORTENV_PAYLOAD_SHA256=" + _NO_SHA256
"""The payload's sha256 (the key of the per-user cache), so that a warm start reads no meta."""
_ENTRY_FIELD = "PORTENV_ENTRY='" + " " * ENTRY_WIDTH + "'"
"""The command a one-file app runs, padded with spaces inside its quotes (blank: none)."""


UNZSTD_LICENCE_NAME = "portenv/LICENSE-zstd"
"""zstd's licence, the member after the decompressor it covers."""

CUT_SHARES = 16
"""The unpacker is offered a cut near each sixteenth of the tar stream: enough for 2 to 16
cores to get near-equal shares, few enough for the meta block."""


def payload_cuts(info: PayloadInfo) -> tuple[tuple[int, int], ...]:
    """The meta's `payload_cuts`: the gzip member starts nearest to each share of the tar
    stream, then the end (payload size, tar size); nothing for a payload of one member."""
    if not info.members:
        return ()
    cuts: list[tuple[int, int]] = []
    for share in range(1, CUT_SHARES):
        goal = info.tar_size * share / CUT_SHARES
        nearest = min(info.members, key=lambda member: abs(member[1] - goal))
        if not cuts or nearest[1] > cuts[-1][1]:
            cuts.append(nearest)
    return (*cuts, (info.size, info.tar_size))


def meta_block(meta: PackMeta) -> bytes:
    """The meta member: `key=value` lines padded with newlines to exactly 4096 bytes."""
    text = ("\n".join(meta.lines()) + "\n").encode("ascii")
    if len(text) > META_SIZE:
        msg = f"meta block is {len(text)} bytes, more than {META_SIZE}"
        raise ValueError(msg)
    return text + b"\n" * (META_SIZE - len(text))


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uname = info.gname = ""
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")


def payload_name(compression: str) -> str:
    """The payload member's name: ``portenv/payload`` + the codec's suffix."""
    return "portenv/payload" + codec(compression).suffix


def container_head(meta: PackMeta) -> bytes:
    """The first 5120 bytes of `env.tar`: the meta member, then the payload member's header."""
    return (
        _header(META_NAME, META_SIZE)
        + meta_block(meta)
        + _header(payload_name(meta.compression), meta.payload_size)
    )


def container_tail(payload_size: int, unzstd: bytes = b"") -> bytes:
    """What follows the payload: its padding, the `unzstd` member if any (the decompressor a
    zstd archive carries: after the payload, so that the payload's offset never moves), the two
    zero blocks, and the record padding.

    The same bytes tarfile and GNU tar end an archive with, counted from the container's start
    (not the stream's: env.sh must carry env.tar's bytes unchanged).
    """
    end = PAYLOAD_OFFSET + payload_size
    if not unzstd:
        return tar_end(end)
    padding = b"\0" * (-end % 512)
    notice = licence().encode()
    member = _header(UNZSTD_NAME, len(unzstd)) + unzstd + b"\0" * (-len(unzstd) % 512)
    member += _header(UNZSTD_LICENCE_NAME, len(notice)) + notice
    return padding + member + tar_end(end + len(padding) + len(member))


def unzstd_offset(payload_size: int) -> int:
    """Where the decompressor's bytes start in an env.tar (after the payload and a header)."""
    return PAYLOAD_OFFSET + payload_size + -payload_size % 512 + 512


def write_container(meta: PackMeta, payload: BinaryIO, sink: BinaryIO, unzstd: bytes = b"") -> None:
    """Write `env.tar`: the meta member at offset 0, the payload's data at offset 5120."""
    sink.write(container_head(meta))
    shutil.copyfileobj(payload, sink, 1 << 20)
    sink.write(container_tail(meta.payload_size, unzstd))


def unpacker_script() -> str:
    """The POSIX sh unpacker, as shipped in portenv.target."""
    return (
        resources.files("portenv.target").joinpath("portenv-unpack.sh").read_text(encoding="utf-8")
    )


def render_unpacker(
    *, embedded: bool, total_size: int = 0, payload_sha256: str = "", entry: str = ""
) -> bytes:
    """The unpacker: standalone (offset 0), or as a header padded to a multiple of 512 bytes.

    Line 2 holds the size of the whole file: the standalone script's own, or `total_size` for
    the header of an env.sh (0 until the archive's size is known: a header rendered so is only
    measured, never written). A header also holds the payload's sha256 and the `entry` command
    (`portenv pack --entry`). These fields have a fixed width, so writing the real values does
    not move any byte.
    """
    script = unpacker_script()
    for field in (_OFFSET_LINE, _SIZE_FIELD, _SHA256_FIELD, _ENTRY_FIELD):
        if script.count(field) != 1:
            msg = f"the unpacker must hold {field.strip()!r} exactly once"
            raise RuntimeError(msg)
    data = script.encode("utf-8")
    if embedded:
        padded = -(-len(data) // 512) * 512
        offset = f"PORTENV_EMBEDDED_OFFSET={padded:010d}".encode()
        data = data.replace(_OFFSET_LINE.encode(), offset) + b"\n" * (padded - len(data))
        data = data.replace(_SHA256_FIELD.encode(), _sha256_field(payload_sha256))
        data = data.replace(_ENTRY_FIELD.encode(), _entry_field(entry))
    elif payload_sha256 or entry:
        msg = "only an env.sh header carries a payload sha256 and an entry"
        raise ValueError(msg)
    else:
        total_size = len(data)
    return data.replace(_SIZE_FIELD.encode(), _size_field(total_size))


def _sha256_field(sha256: str) -> bytes:
    if sha256 and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        msg = f"not a sha256: {sha256!r}"
        raise ValueError(msg)
    return f"PORTENV_PAYLOAD_SHA256={sha256 or _NO_SHA256}".encode()


def _entry_field(entry: str) -> bytes:
    words = parse_entry(entry) if entry else ""
    return f"PORTENV_ENTRY='{words.ljust(ENTRY_WIDTH)}'".encode()


def _size_field(size: int) -> bytes:
    field = f"PORTENV_SIZE={size};"
    if len(field) > len(_SIZE_FIELD):
        msg = f"an archive of {size} bytes is too large for the unpacker's size field"
        raise ValueError(msg)
    return field.ljust(len(_SIZE_FIELD)).encode()


def self_extracting_size(header: bytes, payload_size: int, unzstd: bytes = b"") -> int:
    """The size of an env.sh: its header, the container head, the payload and the tail."""
    tail = container_tail(payload_size, unzstd)
    return len(header) + PAYLOAD_OFFSET + payload_size + len(tail)


def write_self_extracting(
    meta: PackMeta, payload: BinaryIO, sink: BinaryIO, unzstd: bytes = b""
) -> None:
    """Write `env.sh`: the unpacker header, then the container bytes unchanged."""
    measured = render_unpacker(embedded=True)
    total = self_extracting_size(measured, meta.payload_size, unzstd)
    sink.write(render_unpacker(embedded=True, total_size=total, payload_sha256=meta.payload_sha256))
    write_container(meta, payload, sink, unzstd)

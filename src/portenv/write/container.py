"""The outer tar (meta block + payload) and the self-extracting sh header around it."""

from __future__ import annotations

import tarfile
from importlib import resources
from io import BytesIO
from typing import BinaryIO

from portenv.model import PackMeta

__all__ = [
    "META_NAME",
    "META_SIZE",
    "PAYLOAD_NAME",
    "PAYLOAD_OFFSET",
    "render_unpacker",
    "write_container",
    "write_self_extracting",
]

META_NAME = "portenv/meta"
PAYLOAD_NAME = "portenv/payload.tar.gz"
META_SIZE = 4096
PAYLOAD_OFFSET = 512 + META_SIZE + 512
_OFFSET_LINE = "PORTENV_EMBEDDED_OFFSET=0000000000"


def meta_block(meta: PackMeta) -> bytes:
    """The meta member: `key=value` lines padded with newlines to exactly 4096 bytes."""
    text = ("\n".join(meta.lines()) + "\n").encode("ascii")
    if len(text) > META_SIZE:
        msg = f"meta block is {len(text)} bytes, more than {META_SIZE}"
        raise ValueError(msg)
    return text + b"\n" * (META_SIZE - len(text))


def _header(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uname = info.gname = ""
    return info


class _FromHere:
    """A write-only view of a stream that counts positions from where it was wrapped.

    tarfile pads the archive to a multiple of 10240 bytes counted from the stream's start; after
    a self-extracting header that would change the tar's tail, and env.sh must carry env.tar's
    bytes unchanged.
    """

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self._written = 0

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written


def write_container(meta: PackMeta, payload: BinaryIO, sink: BinaryIO) -> None:
    """Write `env.tar`: the meta member at offset 0, the payload's data at offset 5120."""
    view = _FromHere(sink)
    with tarfile.open(fileobj=view, mode="w", format=tarfile.USTAR_FORMAT) as archive:  # type: ignore[call-overload]
        archive.addfile(_header(META_NAME, META_SIZE), BytesIO(meta_block(meta)))
        archive.addfile(_header(PAYLOAD_NAME, meta.payload_size), payload)


def unpacker_script() -> str:
    """The POSIX sh unpacker, as shipped in portenv.target."""
    return (
        resources.files("portenv.target").joinpath("portenv-unpack.sh").read_text(encoding="utf-8")
    )


def render_unpacker(*, embedded: bool) -> bytes:
    """The unpacker: standalone (offset 0), or as a header padded to a multiple of 512 bytes.

    The offset line has a fixed width, so writing the real offset does not move any byte.
    """
    script = unpacker_script()
    if script.count(_OFFSET_LINE) != 1:
        msg = f"the unpacker must hold the line {_OFFSET_LINE} exactly once"
        raise RuntimeError(msg)
    data = script.encode("utf-8")
    if not embedded:
        return data
    padded = -(-len(data) // 512) * 512
    data = data.replace(_OFFSET_LINE.encode(), f"PORTENV_EMBEDDED_OFFSET={padded:010d}".encode())
    return data + b"\n" * (padded - len(data))


def write_self_extracting(meta: PackMeta, payload: BinaryIO, sink: BinaryIO) -> None:
    """Write `env.sh`: the unpacker header, then the container bytes unchanged."""
    sink.write(render_unpacker(embedded=True))
    write_container(meta, payload, sink)

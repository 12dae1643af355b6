"""The decompressor a two-stage archive carries: portenv-unzstd for the archive's arch.

scripts/build-unzstd.sh builds it from zstd's source (no C library, decompress only) into
portenv.target/unzstd/ARCH/ as package data; an archive carries it gzipped, so that a target
with sh, tar and gzip only can read the zstd payload.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from isal import igzip

from portenv.errors import InputError
from portenv.format import UNZSTD_NAME

__all__ = ["UNZSTD_NAME", "Decompressor", "decompressor", "licence"]


@dataclass(frozen=True)
class Decompressor:
    """The gzipped decompressor as the container carries it."""

    arch: str
    gz: bytes
    sha256: str
    """Of `gz`, the member's bytes (what the meta block's `unzstd_sha256` says)."""


def _binary(arch: str) -> bytes | None:
    path = (
        resources.files("portenv.target")
        .joinpath("unzstd")
        .joinpath(arch)
        .joinpath("portenv-unzstd")
    )
    return path.read_bytes() if path.is_file() else None


@cache
def decompressor(arch: str) -> Decompressor:
    """portenv-unzstd for `arch`, gzipped (mtime 0: the same bytes every time), or a refusal."""
    binary = _binary(arch)
    if binary is None:
        msg = f"portenv-unzstd for {arch} is not built, so a zstd archive cannot be made"
        hint = f"run: sh scripts/build-unzstd.sh {arch}  (or pack with --compression gzip)"
        raise InputError(msg, hint=hint)
    gz = igzip.compress(binary, 3, mtime=0)
    return Decompressor(arch, gz, hashlib.sha256(gz).hexdigest())


def licence() -> str:
    """zstd's BSD licence, shipped beside the decompressor."""
    path = resources.files("portenv.target").joinpath("unzstd").joinpath("LICENSE-zstd")
    return path.read_text(encoding="utf-8") if path.is_file() else ""

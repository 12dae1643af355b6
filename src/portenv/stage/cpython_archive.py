"""A python-build-standalone archive given as ``--python FILE``: extracted, checked, found.

PBS publishes two kinds of archive (its documented distribution format): ``install_only``
(``.tar.gz``, the installation itself under ``python/``) and ``full`` (``.tar.zst``, with
``python/PYTHON.json`` naming the interpreter in ``python_exe`` and the installation under
``python/install/``). Either is extracted safely (portenv's member checks and tarfile's
``data`` filter) into a scratch folder, and its interpreter must be one this machine runs:
same CPU and glibc, not musl. The extracted installation is then packed like any other base
installation.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import zstandard

from portenv.errors import InputError
from portenv.source.safetar import extract_safely
from portenv.stage.cpython_closure import read_elf

__all__ = ["ARCHIVE_SUFFIXES", "extracted_standalone", "is_python_archive", "standalone_python"]

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.zst", ".tar.zstd", ".tar")
_GET = "download the x86_64-unknown-linux-gnu (or this machine's) install_only archive"


def is_python_archive(path: Path) -> bool:
    """A file named like a tar archive: ``--python`` then means a PBS distribution."""
    return path.name.endswith(ARCHIVE_SUFFIXES) and not path.is_dir()


def _open(archive: Path, scratch: Path) -> None:
    what = f"python archive {archive.name}"
    try:
        with contextlib.ExitStack() as stack:
            if archive.name.endswith((".tar.zst", ".tar.zstd")):
                raw = stack.enter_context(archive.open("rb"))
                reader = stack.enter_context(zstandard.ZstdDecompressor().stream_reader(raw))
                tar = stack.enter_context(tarfile.open(fileobj=reader, mode="r|"))
            else:
                tar = stack.enter_context(tarfile.open(archive, "r:*"))
            extract_safely(tar, scratch, what=what, symlinks=True)
    except FileNotFoundError as exc:
        msg = f"python archive not found: {archive}"
        raise InputError(msg, hint="pass the path of a python-build-standalone archive") from exc
    except (tarfile.ReadError, tarfile.CompressionError, zstandard.ZstdError) as exc:
        msg = f"cannot read {archive} as a python-build-standalone archive: {exc}"
        raise InputError(msg, hint="get the archive again") from exc


def _interpreter(root: Path, archive: Path) -> tuple[Path, str | None]:
    """The interpreter PYTHON.json names (full archive), else python/bin/python3."""
    description = root / "python" / "PYTHON.json"
    if description.is_file():
        try:
            meta = json.loads(description.read_text(encoding="utf-8"))
            relative = PurePosixPath(str(meta["python_exe"]))
        except (ValueError, KeyError, TypeError) as exc:
            msg = f"{archive.name}: python/PYTHON.json has no readable python_exe"
            raise InputError(msg, hint="get the archive again") from exc
        if relative.is_absolute() or ".." in relative.parts:
            msg = f"{archive.name}: python/PYTHON.json names {relative} outside the archive"
            raise InputError(msg, hint="get the archive again")
        triple = meta.get("target_triple")
        return root / "python" / relative, str(triple) if triple else None
    return root / "python" / "bin" / "python3", None


def standalone_python(archive: Path, scratch: Path) -> Path:
    """Extract ``archive`` into the empty folder ``scratch``; return its interpreter.

    Refuses, before running anything from it, an archive whose interpreter is missing, or
    is built for another CPU or for musl libc.
    """
    _open(archive, scratch)
    python, triple = _interpreter(scratch, archive)
    named = f" ({triple})" if triple else ""
    if not python.is_file():
        inside = python.relative_to(scratch)
        msg = f"not a python-build-standalone archive: {archive.name} has no {inside}"
        raise InputError(msg, hint=_GET)
    elf = read_elf(python)
    host = read_elf(Path("/proc/self/exe"))
    if elf is None:
        msg = f"{archive.name}{named} holds no Linux executable at {python.relative_to(scratch)}"
        raise InputError(msg, hint=_GET)
    if host is not None and (elf.machine, elf.elf_class) != (host.machine, host.elf_class):
        msg = (
            f"python archive for another machine: {archive.name}{named} holds an "
            f"{elf.machine.removeprefix('EM_')} interpreter, this machine is {platform.machine()}"
        )
        raise InputError(msg, hint=_GET)
    if elf.interpreter is not None and "musl" in elf.interpreter:
        msg = (
            f"python archive for musl libc: {archive.name}{named} loads with "
            f"{elf.interpreter}, portenv targets glibc systems"
        )
        raise InputError(msg, hint=_GET.replace("install_only", "glibc (-gnu) install_only"))
    return python


@contextlib.contextmanager
def extracted_standalone(archive: Path, under: Path | None = None) -> Iterator[Path]:
    """The interpreter of ``archive``, extracted for the time of the ``with`` block."""
    if under is not None:
        under.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="pbs-", dir=under))
    try:
        yield standalone_python(archive, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

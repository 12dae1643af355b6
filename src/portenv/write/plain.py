"""Write a plain archive of the environment (`pack --format tar.gz|zip`), for cluster engines.

Its root is the environment's content, as conda-pack's is: Spark's `--archives env.tar.gz#env`,
Ray's `working_dir` or any `tar -xzf` / `unzip` gives a folder whose `bin/python` runs at once,
with no unpacker and no fixer step (seal.plain makes every file that named a path find its own
location, or refuses). Same inputs, same bytes: members in the payload's order with its
normalized headers (owner 0, mtime 0, modes 0755/0644), one gzip member with mtime 0 and no
name, or zip entries dated 1980-01-01 with Unix modes. `dereference` stores each symlink as a
copy of what it points to, for extractors that drop links (Ray's); a zip always does, since
zip links are an extension most extractors write as small text files.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, cast

from isal import igzip

from portenv.errors import OutputError, UsageError
from portenv.reporting import NullReporter, Reporter
from portenv.seal import SealedPrefix
from portenv.seal.listing import Entry, listing
from portenv.seal.plain import PlainChanges, plain_changes
from portenv.write import WrittenArchive, atomic_output, publish_sha256
from portenv.write.payload import PayloadMismatchError, listed_tar_digest, tar_end, tar_header
from portenv.write.sbom import read_inventory

__all__ = [
    "PLAIN_FORMATS",
    "PlainFormat",
    "PlainOptions",
    "check_plain_options",
    "check_plain_output",
    "plain_format",
    "plain_members",
    "write_plain",
]

PlainFormat = Literal["tar.gz", "zip"]
PLAIN_FORMATS: dict[str, tuple[str, ...]] = {"tar.gz": (".tar.gz", ".tgz"), "zip": (".zip",)}
"""Each plain format and the output names it takes (engines choose the extractor by them)."""
_READ = 1 << 20
_PROGRESS_STEP = 4 << 20
_LINK_DEPTH = 32
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Member:
    """One member of the plain archive: its entry, and where its bytes come from."""

    entry: Entry
    source: str = ""
    """The file under the prefix to copy (relative), for a file member without `data`."""
    data: bytes | None = None


def check_plain_output(output: Path, archive_format: str) -> None:
    """The output's name must say what it is: Spark and Ray pick the extractor by suffix."""
    suffixes = PLAIN_FORMATS[archive_format]
    if not output.name.endswith(suffixes):
        msg = (
            f"a {archive_format} archive must be named *{' or *'.join(suffixes)}, not {output.name}"
        )
        raise OutputError(msg, hint=f"name the output like env{suffixes[0]}")


def plain_format(name: str) -> Literal["", "tar.gz", "zip"]:
    """The plain format `pack --format` names, or "" for the other formats."""
    return "tar.gz" if name == "tar.gz" else "zip" if name == "zip" else ""


class PlainOptions(Protocol):
    """The pack options a plain archive cannot take (see check_plain_options)."""

    @property
    def entry(self) -> str: ...

    @property
    def dereference(self) -> bool: ...


def check_plain_options(
    archive_format: str, output: Path, options: PlainOptions, compression: str | None
) -> None:
    """Refuse, before any work, what a plain archive cannot be (named otherwise, runnable with
    `--entry`, zstd-compressed: extractors expect gzip), and `--dereference` for the others."""
    if not plain_format(archive_format):
        if options.dereference:
            msg = "--dereference applies to plain archives (--format tar.gz) only"
            raise UsageError(msg, hint="drop --dereference, or pass --format tar.gz")
        return
    check_plain_output(output, archive_format)
    if options.entry:
        msg = f"--entry makes a runnable env.sh, not a plain {archive_format} archive"
        raise UsageError(msg, hint="drop --entry: run ENV/bin/COMMAND after extraction")
    if compression not in (None, "gzip"):
        msg = f"a plain {archive_format} archive is not compressed with {compression}"
        raise UsageError(msg, hint="drop --compression: Spark, Ray and tar expect gzip")


def _copy_of(root: Path, path: str, depth: int) -> list[Member]:
    """The members that stand for the symlink `path`: a copy of its file, or of its folder."""
    target = os.path.realpath(root / path)
    inside = os.path.relpath(target, os.path.realpath(root))
    if depth > _LINK_DEPTH or inside.startswith("..") or not os.path.exists(target):
        msg = (
            f"symlink {path} points outside the environment or nowhere: {os.readlink(root / path)}"
        )
        raise OutputError(msg, hint="pack without --dereference (and not as zip), or fix the link")
    if not os.path.isdir(target):
        mode = os.stat(target).st_mode
        kind = "x" if mode & 0o111 else "f"
        return [Member(Entry(path, kind, os.path.getsize(target)), inside)]
    found = [Member(Entry(path, "d"))]
    for sub in listing(Path(target)):
        name = f"{path}/{sub.path}"
        if sub.kind == "l":
            found += _copy_of(root, name, depth + 1)
        else:
            source = f"{inside}/{sub.path}" if sub.kind in ("f", "x") else ""
            found.append(Member(replace(sub, path=name), source))
    return found


def plain_members(
    root: Path, entries: list[Entry], changes: PlainChanges, *, dereference: bool
) -> list[Member]:
    """The archive's members: the listing with the changed files' new bytes, and links copied
    when asked."""
    found: list[Member] = []
    for entry in entries:
        if entry.path in changes.dropped:
            continue
        data = changes.replaced.get(entry.path)
        if data is not None:
            found.append(Member(replace(entry, size=len(data)), data=data))
        elif entry.kind == "l" and dereference:
            found += _copy_of(root, entry.path, 0)
        else:
            found.append(Member(entry, entry.path if entry.kind in ("f", "x") else ""))
    return _with_added(found, changes.added)


def _with_added(members: list[Member], added: dict[str, bytes]) -> list[Member]:
    """`members` and the `added` files (with any folder they need), in the payload's order."""
    if not added:
        return members
    names = {m.entry.path for m in members}
    more = []
    for path, data in added.items():
        parents = Path(path).parents
        more += [Member(Entry(str(d), "d")) for d in parents if str(d) not in (".", *names)]
        names.update(str(d) for d in parents)
        more.append(Member(Entry(path, "f", len(data)), data=data))
    return sorted([*members, *more], key=lambda m: m.entry.path.split("/"))


def _chunks(root: Path, member: Member) -> Callable[[], bytes]:
    """Reads the member's bytes in pieces; exactly its listed size (a changed file fails)."""
    if member.data is not None:
        pieces = [member.data]
        return lambda: pieces.pop() if pieces else b""
    stream = (root / member.source).open("rb")
    left = member.entry.size

    def read() -> bytes:
        nonlocal left
        piece = stream.read(min(_READ, left)) if left else b""
        left -= len(piece)
        if not piece:
            extra = stream.read(1)
            stream.close()
            if left or extra:
                msg = f"{member.source} changed while it was being packed"
                raise PayloadMismatchError(msg)
        return piece

    return read


def _write_tar_gz(
    root: Path, members: list[Member], sink: BinaryIO, level: int, advance: Callable[[int], object]
) -> None:
    gzip_file = cast("Callable[..., BinaryIO]", igzip.IGzipFile)
    with gzip_file(filename="", mode="wb", compresslevel=level, fileobj=sink, mtime=0) as gz:
        write = cast("Callable[[bytes], int]", gz.write)
        offset = 0
        for member in members:
            header = tar_header(member.entry)
            write(header)
            offset += len(header)
            if member.entry.kind in ("f", "x"):
                read = _chunks(root, member)
                while piece := read():
                    write(piece)
                advance(member.entry.size)
                padding = -member.entry.size % tarfile.BLOCKSIZE
                write(b"\0" * padding)
                offset += member.entry.size + padding
        write(tar_end(offset))


def _zip_info(entry: Entry) -> zipfile.ZipInfo:
    directory = entry.kind == "d"
    info = zipfile.ZipInfo(entry.path + ("/" if directory else ""), date_time=_ZIP_EPOCH)
    info.create_system = 3  # Unix: the high 16 bits of external_attr are st_mode
    if directory:
        info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
    else:
        info.external_attr = (stat.S_IFREG | (0o755 if entry.kind == "x" else 0o644)) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        info.file_size = entry.size
    return info


def _write_zip(
    root: Path, members: list[Member], sink: BinaryIO, advance: Callable[[int], object]
) -> None:
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        for member in members:
            info = _zip_info(member.entry)
            if member.entry.kind == "d":
                archive.writestr(info, b"")
                continue
            read = _chunks(root, member)
            with archive.open(info, "w", force_zip64=member.entry.size >= 1 << 31) as out:
                while piece := read():
                    out.write(piece)
            advance(member.entry.size)


def write_plain(
    sealed: SealedPrefix,
    output: Path,
    *,
    archive_format: PlainFormat,
    dereference: bool = False,
    level: int = 2,
    entries: list[Entry] | None = None,
    expect_tar_sha256: str | None = None,
    reporter: Reporter | None = None,
) -> WrittenArchive:
    """Write `sealed` as a plain archive at `output`, atomically, with `OUTPUT.sha256`.

    With `expect_tar_sha256` (a cached prefix), the prefix must still give the payload it gave
    when it was made, else PayloadMismatchError is raised and nothing is written.
    """
    reporter = reporter or NullReporter()
    check_plain_output(output, archive_format)
    root = sealed.path
    entries = listing(root) if entries is None else entries
    if expect_tar_sha256 is not None and listed_tar_digest(root, entries) != expect_tar_sha256:
        msg = f"the tar of {root} is not the one recorded when it was made"
        raise PayloadMismatchError(msg)
    shipped = any("/__pycache__/" in f"/{e.path}" for e in entries)  # not --no-bytecode
    changes = plain_changes(root, sealed.manifest, bytecode=shipped)
    members = plain_members(
        root, entries, changes, dereference=dereference or archive_format == "zip"
    )
    token = reporter.on_task_start("compressing", sum(m.entry.size for m in members))

    pending = [0]  # reported in 4 MiB steps: a bar redrawn per file costs more than the file

    def advance(size: int) -> None:
        pending[0] += size
        if pending[0] >= _PROGRESS_STEP:
            reporter.on_task_advance(token, pending[0])
            pending[0] = 0

    with atomic_output(output) as sink:
        if archive_format == "zip":
            _write_zip(root, members, sink, advance)
        else:
            _write_tar_gz(root, members, sink, level, advance)
    if pending[0]:
        reporter.on_task_advance(token, pending[0])
    reporter.on_task_complete(token)
    meta = replace(sealed.meta, env_name="", compression=archive_format, prefix_max=0)
    meta = replace(meta, files=len(members), payload_size=output.stat().st_size)
    inventory = tuple(read_inventory(root))
    return WrittenArchive(
        output, publish_sha256(output), meta, inventory=inventory, format_name=archive_format
    )

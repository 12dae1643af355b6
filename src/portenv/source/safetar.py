"""Extract a tar that nobody vouches for: portenv's member checks, then tarfile's ``data`` filter.

Both archives portenv reads from elsewhere go through here: a pixi-pack ``environment.tar``
(plain files and folders only) and the payload of a portenv archive (symlinks too). The checks
run on every header BEFORE its member is written, so a hostile archive stops at the first bad
member; the extraction folder is always a fresh temporary folder that the caller removes on
failure, so nothing of a refused archive is left behind.

Refused: absolute names, ``..`` components, duplicate names, hard links, device files, FIFOs
and other special members, setuid/setgid bits, absolute symlinks, symlinks whose target leaves
the folder (lexically at extraction, and again on disk once every member is in place, which
catches chains of links), and members written through a symlink.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from portenv.errors import InputError, OutputError

__all__ = ["extract_safely"]

_HINT = "the archive is damaged or was tampered with: get it again from its source"


def _hostile(what: str, problem: str, name: str) -> InputError:
    msg = f"{what} holds {problem}: {name!r}"
    return InputError(msg, hint=_HINT)


class _MemberCheck:
    """The checks one header gets before its member is written; remembers what it has seen."""

    def __init__(self, what: str, *, symlinks: bool) -> None:
        self.what = what
        self.symlinks = symlinks
        self.seen: set[str] = set()
        self.links: set[str] = set()

    def key(self, member: tarfile.TarInfo) -> str | None:
        """The member's normalized relative name, or None for the archive's root folder."""
        name = member.name
        if name.startswith("/"):
            raise _hostile(self.what, "a member with an absolute path", name)
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise _hostile(self.what, "a member that climbs out with '..'", name)
        if not parts:
            if not member.isdir():
                raise _hostile(self.what, "a member without a name", name)
            return None
        return "/".join(parts)

    def check(self, member: tarfile.TarInfo, key: str) -> None:
        """Refuse `member` (named `key`) unless it is a plain file, folder or inside link."""
        if key in self.seen:
            raise _hostile(self.what, "the same member twice", key)
        self.seen.add(key)
        parents = key.split("/")[:-1]
        for depth in range(1, len(parents) + 1):
            if "/".join(parents[:depth]) in self.links:
                raise _hostile(self.what, "a member written through a symlink", key)
        if member.mode & (stat.S_ISUID | stat.S_ISGID):
            raise _hostile(self.what, "a setuid or setgid member", key)
        if member.issym():
            self._check_link(member, key)
        elif member.islnk():
            raise _hostile(self.what, "a hard link", key)
        elif not (member.isreg() or member.isdir()):
            raise _hostile(self.what, "a device, FIFO or other special member", key)

    def _check_link(self, member: tarfile.TarInfo, key: str) -> None:
        if not self.symlinks:
            raise _hostile(self.what, "a symlink, which this format never has", key)
        target = member.linkname
        if target.startswith("/"):
            raise _hostile(self.what, f"an absolute symlink (to {target})", key)
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(key), target))
        if resolved == ".." or resolved.startswith("../"):
            raise _hostile(self.what, f"a symlink out of the archive (to {target})", key)
        self.links.add(key)


def _filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's ``data`` filter (owner dropped, modes tamed, links resolved on disk)."""
    return tarfile.data_filter(member, dest)


def _links_stay_inside(dest: Path, what: str) -> None:
    """Every symlink, resolved on disk with all members in place, ends inside `dest`."""
    root = os.path.realpath(dest)
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                real = os.path.realpath(path)
                if real != root and not real.startswith(root + os.sep):
                    relative = os.path.relpath(path, dest)
                    raise _hostile(what, f"a symlink that resolves out of it ({real})", relative)


def extract_safely(archive: tarfile.TarFile, dest: Path, *, what: str, symlinks: bool) -> int:
    """Extract `archive` into the empty folder `dest`; return how many members were written.

    `what` names the archive in error messages. Works on streams (``r|gz``): each header is
    checked when it is read, before its data is.
    """
    check = _MemberCheck(what, symlinks=symlinks)
    count = 0

    def members() -> Iterator[tarfile.TarInfo]:
        nonlocal count
        for member in archive:
            key = check.key(member)
            if key is None:
                continue
            check.check(member, key)
            count += 1
            yield member

    archive.errorlevel = 2
    try:
        archive.extractall(dest, members=members(), filter=_filter)
    except tarfile.FilterError as exc:
        msg = f"{what} is refused by tarfile's data filter: {exc}"
        raise InputError(msg, hint=_HINT) from exc
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        msg = f"{what} is damaged: {exc}"
        raise InputError(msg, hint="copy the archive again") from exc
    except OSError as exc:
        msg = f"cannot extract {what} into {dest}: {exc.strerror or exc}"
        raise OutputError(
            msg, hint=f"check the free space and permissions of {dest.parent}"
        ) from exc
    _links_stay_inside(dest, what)
    return count

"""Sealed prefixes kept between packs, so that packing the same lock again skips staging.

Staging and sealing are a function of the locked packages (with their hashes), the platform
and portenv's own code; this cache keeps their result under a key made of exactly that (pixi
keeps an installed environment in the same spirit). An entry is

    ROOT/KEY/prefix/       the sealed prefix, never written after it was sealed
    ROOT/KEY/record.json   the meta block, the listing of every member (path, kind, size,
                           link), the digest of the payload's tar (write.payload.tar_digest)
                           and the files of this machine it was copied from, with their size
                           and mtime (a --python base: its stdlib, libpython, libssl...)

It is built in a ``.new-*`` folder and renamed into place only after a pack from it
succeeded, so a crash leaves no entry. Before reuse the listing is compared with the
prefix and the files it was copied from must be as they were (a system update of libssl
makes a new entry); while the payload is written again its tar is hashed and must give the recorded
digest, else the new archive is not published and the entry is rebuilt. The entries used
least recently beyond `keep` are removed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import portenv
from portenv.model import PackMeta, RelocationManifest
from portenv.seal import SealedPrefix
from portenv.seal.listing import Entry, listing

__all__ = ["KEEP", "CachedSeal", "SealCache"]

FORMAT = 1
KEEP = 3
"""Entries kept: an L environment takes about a GB, like the environment pixi keeps."""
_STALE = 24 * 3600
"""Seconds after which a leftover ``.new-*``/``.old-*`` folder is a crash's, not a pack's."""
_TOOLS = ("rattler", "installer", "elftools")
"""Modules whose installed distributions (and those beside them) stage and seal."""


@dataclass(frozen=True)
class CachedSeal:
    """A cache entry that passed its listing check."""

    key: str
    sealed: SealedPrefix
    entries: list[Entry]
    tar_sha256: str


def _installed(module: str) -> list[str]:
    """The distributions installed beside `module` (their ``*.dist-info`` names carry the
    versions; reading them is cheaper than importlib.metadata, which loads the email parser)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return [f"{module} missing"]
    site = Path(spec.origin).parent.parent
    return sorted(n for n in os.listdir(site) if n.endswith(".dist-info"))


def _code_fingerprint() -> str:
    """portenv's own files and the versions of the tools that stage: an entry made by other
    code is never reused (a development checkout changes without changing its version)."""
    digest = hashlib.sha256()
    package = Path(portenv.__file__).parent
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".sh") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(package)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    for name in sorted({n for module in _TOOLS for n in _installed(module)}):
        digest.update(name.encode() + b"\0")
    return digest.hexdigest()


def _stats(paths: Iterable[str]) -> list[list[object]]:
    """[path, size, mtime in ns] of each file (size -1 for one that is gone)."""
    found: list[list[object]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            found.append([path, -1, 0])
            continue
        found.append([path, st.st_size, st.st_mtime_ns])
    return found


class SealCache:
    """The folder of cached sealed prefixes (normally PACKAGE_CACHE/sealed)."""

    def __init__(self, root: Path, keep: int = KEEP) -> None:
        self.root = root
        self.keep = keep

    def key(self, inputs: Mapping[str, object]) -> str:
        """The key of a prefix staged and sealed from `inputs` by this portenv."""
        text = json.dumps(
            {"format": FORMAT, "code": _code_fingerprint(), "inputs": inputs},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def lookup(self, key: str) -> CachedSeal | None:
        """The entry for `key` if it is there, readable and lists what it listed when made."""
        folder = self.root / key
        try:
            record = json.loads((folder / "record.json").read_text(encoding="utf-8"))
            if record.get("format") != FORMAT or record.get("key") != key:
                raise ValueError(record.get("format"))
            prefix = folder / "prefix"
            manifest = json.loads((prefix / ".portenv" / "manifest.json").read_text("utf-8"))
            sealed = SealedPrefix(
                prefix, RelocationManifest.from_json(manifest), PackMeta.from_json(record["meta"])
            )
            recorded = [Entry.from_json(e) for e in record["entries"]]
            tar_sha256 = str(record["tar_sha256"])
            sources = record.get("sources", [])
            unchanged = _stats(str(source[0]) for source in sources) == sources
            found = listing(prefix)
        except FileNotFoundError:
            if folder.exists():
                self.discard(key)
            return None
        except (OSError, ValueError, KeyError, TypeError):
            self.discard(key)
            return None
        if found != recorded or not unchanged:
            self.discard(key)
            return None
        os.utime(folder / "record.json")
        return CachedSeal(key, sealed, found, tar_sha256)

    def new_folder(self) -> Path:
        """A private folder to stage a new entry in (its prefix goes to ``prefix/``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.root, prefix=".new-"))

    def store(
        self,
        key: str,
        folder: Path,
        sealed: SealedPrefix,
        entries: list[Entry],
        tar_sha256: str,
        sources: Iterable[str] = (),
    ) -> None:
        """Record `folder` (from new_folder) as the entry for `key`, then evict old entries.

        `sources` are files outside the prefix it was copied from: checked before each reuse.
        """
        record = {
            "format": FORMAT,
            "key": key,
            "meta": asdict(sealed.meta),
            "entries": [e.to_json() for e in entries],
            "tar_sha256": tar_sha256,
            "sources": _stats(sources),
        }
        (folder / "record.json").write_text(json.dumps(record), encoding="utf-8")
        try:
            os.rename(folder, self.root / key)
        except OSError:  # another pack stored the same key first: keep theirs
            shutil.rmtree(folder, ignore_errors=True)
        self.evict()

    def discard(self, key: str) -> None:
        """Remove an entry: renamed away first, so no reader ever sees half of one."""
        self._remove(self.root / key)

    def _remove(self, folder: Path) -> None:
        try:
            doomed = tempfile.mkdtemp(dir=self.root, prefix=".old-")
            os.rename(folder, os.path.join(doomed, "entry"))
        except OSError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def evict(self) -> None:
        """Keep the `keep` entries used last; remove crash leftovers."""
        entries, now = [], time.time()
        for child in self.root.iterdir():
            try:
                if child.name.startswith((".new-", ".old-")):
                    if now - child.stat().st_mtime > _STALE:
                        shutil.rmtree(child, ignore_errors=True)
                    continue
                entries.append(((child / "record.json").stat().st_mtime, child))
            except OSError:
                continue
        for _, child in sorted(entries, reverse=True)[self.keep :]:
            self._remove(child)

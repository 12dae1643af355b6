"""The sealed-prefix cache: reuse, keys that follow the inputs, damaged entries found."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

import portenv
from portenv.model import (
    CondaPackage,
    FetchedPackage,
    Plan,
    PypiPackage,
    PypiSource,
    RelocationManifest,
    Subdir,
)
from portenv.pack import seal_inputs
from portenv.seal import SealedPrefix
from portenv.seal.cache import SealCache
from portenv.seal.listing import listing
from portenv.write import write_archive
from portenv.write.payload import PayloadMismatchError
from tests.unit.test_write import META

INPUTS = {"subdir": "linux-64", "conda": [{"name": "python", "sha256": "aa" * 32}]}


def sealed_tree(root: Path) -> SealedPrefix:
    """A small prefix with what the cache reads back: its relocation manifest."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python3.12").write_bytes(b"\x7fELF" + os.urandom(3000))
    (root / "bin" / "python3.12").chmod(0o755)
    (root / "bin" / "python").symlink_to("python3.12")
    (root / ".portenv").mkdir()
    manifest = RelocationManifest("/portenv_placehold", 18, "bin/python3.12", ())
    (root / ".portenv" / "manifest.json").write_text(json.dumps(manifest.to_json()))
    return SealedPrefix(root, manifest, META)


def store(cache: SealCache, key: str, out: Path) -> Path:
    """Seal into a new cache folder and pack it once, as a cache miss does; returns the archive."""
    folder = cache.new_folder()
    sealed = sealed_tree(folder / "prefix")
    entries = listing(sealed.path)
    written = write_archive(sealed, out, entries=entries)
    cache.store(key, folder, sealed, entries, written.tar_sha256)
    return out


def repack(cache: SealCache, key: str, out: Path) -> Path:
    hit = cache.lookup(key)
    assert hit is not None
    write_archive(hit.sealed, out, entries=hit.entries, expect_tar_sha256=hit.tar_sha256)
    return out


def test_an_entry_is_reused_and_gives_the_same_bytes(tmp_path: Path) -> None:
    cache = SealCache(tmp_path / "sealed")
    key = cache.key(INPUTS)
    first = store(cache, key, tmp_path / "first.tar")
    assert sorted(p.name for p in cache.root.iterdir()) == [key], "no temp folder is left"
    hit = cache.lookup(key)
    assert hit is not None and hit.sealed.meta == META
    assert hit.sealed.manifest.python == "bin/python3.12"
    assert repack(cache, key, tmp_path / "again.tar").read_bytes() == first.read_bytes()


def test_the_key_follows_every_input(tmp_path: Path) -> None:
    cache = SealCache(tmp_path / "sealed")
    key = cache.key(INPUTS)
    assert cache.key(json.loads(json.dumps(INPUTS))) == key
    changed = {**INPUTS, "conda": [{"name": "python", "sha256": "ab" * 32}]}
    assert cache.key(changed) != key
    store(cache, key, tmp_path / "a.tar")
    assert cache.lookup(cache.key(changed)) is None


def conda(sha256: str) -> FetchedPackage:
    package = CondaPackage(
        "python", "3.12.1", "h0", "linux-64", "file:///c/python.conda", "python.conda",
        sha256, None, 10,
    )  # fmt: skip
    return FetchedPackage(package, Path("/cache/python.conda"))


def test_seal_inputs_name_the_hashes_and_refuse_local_folders() -> None:
    plan = Plan(Path("/p"), "default", "linux-64", Subdir("linux-64"), (), (), ())
    wheel = PypiPackage("idna", "3.7", "https://files/idna.whl", "wheel", "cc" * 32)
    cc = PypiSource(wheel, Path("/w"), "file", "cc" * 32)
    base = seal_inputs(plan, [conda("aa" * 32)], [cc])
    assert base is not None
    assert seal_inputs(plan, [conda("ab" * 32)], [cc]) != base
    assert seal_inputs(plan, [conda("aa" * 32)], [replace(cc, digest="cd" * 32)]) != base
    other_glibc = replace(plan, lock_glibc="2.17")
    assert seal_inputs(other_glibc, [conda("aa" * 32)], [cc]) != base
    folder = PypiSource(wheel, Path("/src/pkg"), "folder", "0" * 64)
    assert seal_inputs(plan, [conda("aa" * 32)], [folder]) is None


def test_changed_content_of_the_same_size_is_caught_while_writing(tmp_path: Path) -> None:
    cache = SealCache(tmp_path / "sealed")
    key = cache.key(INPUTS)
    store(cache, key, tmp_path / "first.tar")
    python = cache.root / key / "prefix" / "bin" / "python3.12"
    data = bytearray(python.read_bytes())
    data[100] ^= 0xFF
    python.write_bytes(bytes(data))
    hit = cache.lookup(key)
    assert hit is not None, "the listing (paths, sizes) still matches"
    out = tmp_path / "tampered.tar"
    with pytest.raises(PayloadMismatchError):
        write_archive(hit.sealed, out, entries=hit.entries, expect_tar_sha256=hit.tar_sha256)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.tar", "first.tar.sha256", "sealed"]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: (p / "bin" / "python3.12").write_bytes(b"short"), id="size"),
        pytest.param(lambda p: (p / "bin" / "extra").write_text("x"), id="added-file"),
        pytest.param(lambda p: (p / "bin" / "python").unlink(), id="removed-link"),
        pytest.param(lambda p: (p / "bin" / "python3.12").chmod(0o644), id="mode"),
        pytest.param(lambda p: (p.parent / "record.json").write_text("{"), id="record"),
        pytest.param(lambda p: (p.parent / "record.json").unlink(), id="no-record"),
        pytest.param(lambda p: shutil.rmtree(p / ".portenv"), id="no-manifest"),
    ],
)
def test_a_damaged_entry_is_dropped_before_use(tmp_path: Path, damage: object) -> None:
    cache = SealCache(tmp_path / "sealed")
    key = cache.key(INPUTS)
    store(cache, key, tmp_path / "first.tar")
    damage(cache.root / key / "prefix")  # type: ignore[operator]
    assert cache.lookup(key) is None
    assert not (cache.root / key).exists(), "the damaged entry is removed"
    assert [p.name for p in cache.root.iterdir()] == []


def test_the_entries_used_last_are_kept(tmp_path: Path) -> None:
    cache = SealCache(tmp_path / "sealed", keep=2)
    keys = [cache.key({"n": n}) for n in range(3)]
    for n, key in enumerate(keys[:2]):
        store(cache, key, tmp_path / f"{n}.tar")
        os.utime(cache.root / key / "record.json", (1000 + n, 1000 + n))
    assert cache.lookup(keys[0]) is not None  # used now: the newest
    store(cache, keys[2], tmp_path / "2.tar")
    assert sorted(p.name for p in cache.root.iterdir()) == sorted([keys[0], keys[2]])


def test_a_crashed_pack_leaves_no_entry(tmp_path: Path) -> None:
    cache = SealCache(tmp_path / "sealed")
    folder = cache.new_folder()
    sealed_tree(folder / "prefix")
    assert cache.lookup(cache.key(INPUTS)) is None, "a folder being built is not an entry"
    os.utime(folder, (0, 0))
    cache.evict()
    assert not folder.exists(), "a day-old leftover is removed"


def test_the_key_follows_portenv_own_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A development checkout changes without a new version: its files are in the key."""
    copy = tmp_path / "portenv"
    shutil.copytree(Path(portenv.__file__).parent, copy, ignore=shutil.ignore_patterns("*.pyc"))
    monkeypatch.setattr(portenv, "__file__", str(copy / "__init__.py"))
    cache = SealCache(tmp_path / "sealed")
    key = cache.key(INPUTS)
    assert cache.key(INPUTS) == key
    relocate = copy / "target" / "relocate.py"
    relocate.write_text(relocate.read_text() + "\n# changed\n")
    assert cache.key(INPUTS) != key


@pytest.mark.parametrize("change", ["touched", "resized", "removed"])
def test_an_entry_whose_sources_changed_is_not_reused(tmp_path: Path, change: str) -> None:
    """A --python prefix is copied from files of this machine: a changed one (a system update
    of libssl, a rebuilt stdlib) must give a new entry, not the old copy."""
    libssl = tmp_path / "system" / "libssl.so.3"
    libssl.parent.mkdir()
    libssl.write_bytes(b"\x7fELF old")
    cache = SealCache(tmp_path / "sealed")
    key = cache.key(INPUTS)
    folder = cache.new_folder()
    sealed = sealed_tree(folder / "prefix")
    entries = listing(sealed.path)
    written = write_archive(sealed, tmp_path / "a.tar", entries=entries)
    cache.store(key, folder, sealed, entries, written.tar_sha256, [str(libssl)])
    assert cache.lookup(key) is not None, "unchanged sources: reused"
    if change == "touched":
        os.utime(libssl, ns=(0, libssl.stat().st_mtime_ns + 1))
    elif change == "resized":
        libssl.write_bytes(b"\x7fELF new build")
    else:
        libssl.unlink()
    assert cache.lookup(key) is None
    assert not (cache.root / key).exists(), "the stale entry is removed"

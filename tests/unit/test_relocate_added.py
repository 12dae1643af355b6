"""The relocation engine finds what was installed into the env after unpacking (pip & co)."""

from __future__ import annotations

import importlib.util
import json
import marshal
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portenv.seal.files import target_file
from portenv.stage import make_placeholder
from portenv.target import relocate as engine

MAX = 60
PLACEHOLDER = make_placeholder(MAX)
FIRST, SECOND, THIRD = "/first/env", "/second/place", "/t"


def unpacked_env(root: Path) -> None:
    """An env as the unpacker leaves it: payload files with mtime 0, relocated to FIRST."""
    files = {
        "bin/tool": f"#!{PLACEHOLDER}/bin/python3\n",
        "share/readme.txt": "no prefix here\n",
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    (root / ".portenv").mkdir()
    (root / ".portenv" / "pyc_worker.py").write_text(target_file("pyc_worker.py"))
    (root / "bin" / "python3").symlink_to(sys.executable)
    manifest = {"format": 1, "prefix": PLACEHOLDER, "prefix_max": MAX, "python": "bin/python3"}
    manifest["files"] = [{"path": "bin/tool", "mode": "text"}]
    (root / ".portenv" / "manifest.json").write_text(json.dumps(manifest))
    for path in root.rglob("*"):
        os.utime(path, (0, 0), follow_symlinks=False)
    assert engine.relocate(str(root), FIRST) == 1


def pip_installs(root: Path) -> dict[str, bytes]:
    """What `pip install` leaves after the unpack: scripts, .pth, modules, an extension."""
    site = "lib/python3/site-packages"
    added = {
        "bin/cli": f"#!{FIRST}/bin/python3\nimport mod\n".encode(),
        f"{site}/extra.pth": f"{FIRST}/src\n".encode(),
        f"{site}/mod.py": f"HOME = {FIRST!r}\n".encode(),
        f"{site}/_ext.so": f"\x7fELF\0{FIRST}/lib\0".encode(),
        f"{site}/__pycache__/other.cpython-312.pyc": f"\0\0{FIRST}/x.py\0".encode(),
        f"{site}/clean.txt": b"nothing to see\n",
    }
    for relative, data in added.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return added


def manifest_paths(root: Path) -> set[str]:
    data = json.loads((root / ".portenv" / "manifest.json").read_text())
    return {entry["path"] for entry in data["files"]}


def test_text_files_added_later_are_relocated_and_binaries_named(tmp_path: Path) -> None:
    unpacked_env(tmp_path)
    added = pip_installs(tmp_path)
    site = "lib/python3/site-packages"
    warned: list[str] = []
    engine.relocate(str(tmp_path), SECOND, warned)
    assert (tmp_path / "bin/cli").read_text().startswith(f"#!{SECOND}/bin/python3\n")
    assert (tmp_path / site / "extra.pth").read_text() == f"{SECOND}/src\n"
    assert warned == [f"{site}/_ext.so"]
    for untouched in ("_ext.so", "__pycache__/other.cpython-312.pyc", "clean.txt"):
        assert (tmp_path / site / untouched).read_bytes() == added[f"{site}/{untouched}"]
    assert {"bin/cli", f"{site}/extra.pth", f"{site}/mod.py"} <= manifest_paths(tmp_path)
    engine.relocate(str(tmp_path), THIRD)
    assert (tmp_path / "bin/cli").read_text().startswith(f"#!{THIRD}/bin/python3\n")
    assert (tmp_path / site / "mod.py").read_text() == f"HOME = {THIRD!r}\n"


def test_a_rewritten_module_gets_checked_hash_bytecode(tmp_path: Path) -> None:
    unpacked_env(tmp_path)
    pip_installs(tmp_path)
    engine.relocate(str(tmp_path), SECOND)
    source = tmp_path / "lib/python3/site-packages/mod.py"
    data = Path(importlib.util.cache_from_source(str(source))).read_bytes()
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b11, "checked-hash, as the packer writes"
    assert data[8:16] == importlib.util.source_hash(source.read_bytes())
    namespace: dict[str, object] = {}
    exec(marshal.loads(data[16:]), namespace)
    assert namespace["HOME"] == SECOND


def test_the_same_env_relocated_to_the_same_place_gives_the_same_bytecode(tmp_path: Path) -> None:
    """Whatever hash seed the relocating process has (the unpacker runs it with -I)."""
    unpacked_env(tmp_path / "a")
    module = tmp_path / "a" / "lib/python3/site-packages/sets.py"
    module.parent.mkdir(parents=True)
    module.write_text(f"WHERE = {FIRST!r}\nOK = {{'alpha', 'beta', 'gamma', 'delta', 'eps'}}\n")
    shutil.copytree(tmp_path / "a", tmp_path / "b", symlinks=True)
    pycs = []
    for name, seed in (("a", "1"), ("b", "2")):
        script = str(tmp_path / name / ".portenv" / "relocate.py")
        shutil.copyfile(engine.__file__, script)
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, script, "--to", SECOND], env=env, check=True)
        source = tmp_path / name / "lib/python3/site-packages/sets.py"
        pycs.append(Path(importlib.util.cache_from_source(str(source))).read_bytes())
    assert pycs[0] == pycs[1]


def test_payload_files_are_not_read_again(tmp_path: Path) -> None:
    """A file unpacked with mtime 0 is the payload's: the manifest says all about it."""
    unpacked_env(tmp_path)
    readme = tmp_path / "share/readme.txt"
    readme.write_text(f"{FIRST} by chance\n")
    os.utime(readme, (0, 0))
    engine.relocate(str(tmp_path), SECOND)
    assert readme.read_text() == f"{FIRST} by chance\n"
    readme.write_text(f"{SECOND} by hand\n")  # changed since unpacking: mtime now
    engine.relocate(str(tmp_path), THIRD)
    assert readme.read_text() == f"{THIRD} by hand\n"


def test_the_unpackers_relocation_does_not_walk_the_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after extraction nothing can have been added: relocating from the placeholder
    reads only the manifest's files, so the unpack stays as fast as before."""
    walked: list[str] = []

    def walk(top: str) -> list[tuple[str, list[str], list[str]]]:
        walked.append(top)
        return []

    monkeypatch.setattr(os, "walk", walk)
    unpacked_env(tmp_path)
    assert walked == []
    engine.relocate(str(tmp_path), SECOND)
    assert walked == [str(tmp_path)]


def test_main_warns_naming_the_binary_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    unpacked_env(tmp_path)
    pip_installs(tmp_path)
    monkeypatch.setattr(engine, "__file__", str(tmp_path / ".portenv" / "relocate.py"))
    assert engine.main(["--to", SECOND]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: lib/python3/site-packages/_ext.so was added after")
    assert err[-1].startswith("portenv: relocated 4 files to /second/place")


def test_the_placeholder_is_the_one_the_packer_writes() -> None:
    assert all(engine.placeholder(n) == make_placeholder(n) for n in (16, 18, 100, 255))

"""The delta plan (portenv.write.delta) and the update engine (portenv.target.update) on small
synthetic environments: what is shipped, what counts as changed, that the identity does not
depend on where the env lives, and that an applied update gives what a fresh relocation of the
new tree gives."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from portenv.target import relocate
from portenv.target import update as engine
from portenv.write.delta import Tree, plan_delta, stage_update

HOLDER = relocate.placeholder(200)
REGION = 220
TEXT_SCRIPT = f"#!{HOLDER}/bin/python3.12\nprint('hi')\n"


def make_env(
    root: Path, files: dict[str, str | bytes], links: dict[str, str] | None = None
) -> Path:
    """A payload-form env: `files` (a name ending in '*' is executable), the manifest lists
    every text file holding the placeholder and `bin/tool` as a binary with one region."""
    entries: list[dict[str, object]] = []
    for name, content in sorted(files.items()):
        path = root / name.rstrip("*")
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
        path.chmod(0o755 if name.endswith("*") else 0o644)
        relative = name.rstrip("*")
        if relative == "bin/tool":
            entries.append({"path": relative, "mode": "binary", "regions": [[4, REGION]]})
        elif HOLDER.encode() in data:
            entries.append({"path": relative, "mode": "text"})
    for name, target in (links or {}).items():
        (root / name).symlink_to(target)
    manifest = {"format": 1, "prefix": HOLDER, "prefix_max": 200, "python": "bin/python3.12"}
    (root / ".portenv").mkdir(parents=True, exist_ok=True)
    (root / ".portenv" / "manifest.json").write_text(json.dumps({**manifest, "files": entries}))
    return root


def binary(suffix: str) -> bytes:
    region = (HOLDER + "/lib").encode()
    return b"ELF\0" + region + b"\0" * (REGION - len(region)) + suffix.encode()


def tree_of(root: Path) -> Tree:
    """The build side's tree: the listing of the payload-form folder (prefix = placeholder)."""
    return Tree(
        engine.tree_listing(str(root)), json.loads((root / ".portenv/manifest.json").read_text())
    )


OLD_FILES: dict[str, str | bytes] = {
    "bin/python3.12*": "python",
    "bin/tool*": binary("v1"),
    "bin/script*": TEXT_SCRIPT,
    "lib/keep.py": "KEEP = 1\n",
    "lib/gone.py": "GONE = 1\n",
    "lib/change.py": "VALUE = 1\n",
}
NEW_FILES: dict[str, str | bytes] = {
    **{k: v for k, v in OLD_FILES.items() if k != "lib/gone.py"},
    "lib/change.py": "VALUE = 2\n",
    "lib/added.py": "ADDED = 1\n",
}


def test_plan_ships_new_changed_text_and_manifest(tmp_path: Path) -> None:
    old = tree_of(make_env(tmp_path / "old", OLD_FILES))
    new = tree_of(make_env(tmp_path / "new", NEW_FILES, {"lib/link.py": "keep.py"}))
    plan = plan_delta(old, new)
    assert set(plan.ship) == {
        "lib/change.py",
        "lib/added.py",
        "bin/script",  # text manifest files are always shipped
        ".portenv/manifest.json",
    }
    assert (plan.adds, plan.changes, plan.removes) == (2, 1, 1)  # added.py + link; gone.py
    sources = {p: s for p, _, _, s in plan.new}
    assert sources["bin/tool"] == sources["lib/keep.py"] == "old"
    assert plan.from_id != plan.to_id


def test_a_binary_change_or_a_mode_change_is_shipped(tmp_path: Path) -> None:
    old = tree_of(make_env(tmp_path / "old", OLD_FILES))
    files = {**OLD_FILES, "bin/tool*": binary("v2")}
    files["lib/keep.py*"] = files.pop("lib/keep.py")
    plan = plan_delta(old, tree_of(make_env(tmp_path / "new", files)))
    assert {"bin/tool", "lib/keep.py"} <= set(plan.ship)
    assert plan.changes == 2


def test_same_trees_ship_only_the_always_shipped(tmp_path: Path) -> None:
    old = tree_of(make_env(tmp_path / "old", OLD_FILES))
    plan = plan_delta(old, tree_of(make_env(tmp_path / "new", OLD_FILES)))
    assert (plan.adds, plan.changes, plan.removes) == (0, 0, 0)
    assert plan.from_id == plan.to_id
    assert set(plan.ship) == {"bin/script", ".portenv/manifest.json"}


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("/srv/app/env", id="short"),
        pytest.param("/srv/" + "x" * 40 + "/env", id="long-shebang-trampoline"),
    ],
)
def test_identity_is_the_same_wherever_the_env_was_relocated(tmp_path: Path, where: str) -> None:
    """Relocated to a path whose #! line fits, or to one that needs the trampoline, then moved
    and relocated again: the listing the target computes is the payload's."""
    root = make_env(tmp_path / "env", OLD_FILES)
    payload = engine.identity(tree_of(root).comparable())
    relocate.relocate(str(root), where)
    assert engine.identity(engine.tree_listing(str(root))) == payload
    relocate.relocate(str(root), "/elsewhere/e")
    assert engine.identity(engine.tree_listing(str(root))) == payload


def test_a_payload_trampoline_is_folded_on_both_sides(tmp_path: Path) -> None:
    # what a pack leaves when the placeholder makes the #! line too long (a --python env's pip)
    trampoline = relocate.rewrite_text(TEXT_SCRIPT.encode(), b"", b"")
    assert trampoline.startswith(b"#!/bin/sh\n'''exec'")
    root = make_env(tmp_path / "env", {**OLD_FILES, "bin/script*": trampoline})
    payload = engine.identity(tree_of(root).comparable())
    relocate.relocate(str(root), "/srv/app/env")
    assert (root / "bin/script").read_bytes().startswith(b"#!/bin/sh\n")
    assert engine.identity(engine.tree_listing(str(root))) == payload


def test_derived_bytecode_is_left_out(tmp_path: Path) -> None:
    """The relocation compiles the text .py files it rewrites: their .pyc (and a __pycache__
    holding only those) are in no payload."""
    root = make_env(tmp_path / "env", {**OLD_FILES, "lib/site.py": f"P = '{HOLDER}'\n"})
    before = engine.identity(engine.tree_listing(str(root)))
    (root / "lib/__pycache__").mkdir()
    (root / "lib/__pycache__/site.cpython-312.pyc").write_bytes(b"pyc")
    assert engine.identity(engine.tree_listing(str(root))) == before
    (root / "lib/__pycache__/keep.cpython-312.pyc").write_bytes(b"pyc")
    assert engine.identity(engine.tree_listing(str(root))) != before


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Paths, kinds, modes, link targets and contents."""
    out: dict[str, tuple[object, ...]] = {}
    for path in engine.members(root):
        full = root / path
        st = full.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[path] = ("l", os.readlink(full))
        elif stat.S_ISDIR(st.st_mode):
            out[path] = ("d", st.st_mode & 0o777)
        else:
            out[path] = ("f", st.st_mode & 0o777, hashlib.sha256(full.read_bytes()).hexdigest())
    return out


def stage(tmp_path: Path, old: Path, new: Path) -> Path:
    """The update's payload as the target extracts it."""
    plan = plan_delta(tree_of(old), tree_of(new))
    folder = tmp_path / "update"
    for path in plan.ship:
        target = folder / ".portenv-update/files" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(new / path, target)
    stage_update(folder, plan)
    return folder


def test_apply_gives_a_fresh_relocation_of_new(tmp_path: Path) -> None:
    old = make_env(tmp_path / "old", OLD_FILES)
    new = make_env(tmp_path / "new", NEW_FILES, {"lib/link.py": "keep.py"})
    update = stage(tmp_path, old, new)
    dest = tmp_path / "app" / "env"
    shutil.copytree(old, dest, symlinks=True)
    relocate.relocate(str(dest), str(dest))
    kept = (dest / "bin/tool").stat().st_ino
    engine.apply(str(dest), str(update), str(tmp_path / "app" / "aside"))
    assert (dest / "bin/tool").stat().st_ino == kept  # a hard link, not a copy
    updated = snapshot(dest)
    shutil.rmtree(dest)
    shutil.copytree(new, dest, symlinks=True)
    relocate.relocate(str(dest), str(dest))
    assert updated == snapshot(dest)


def test_a_changed_env_is_refused_naming_files_and_left_untouched(tmp_path: Path) -> None:
    old = make_env(tmp_path / "old", OLD_FILES)
    update = stage(tmp_path, old, make_env(tmp_path / "new", NEW_FILES))
    dest = tmp_path / "app" / "env"
    shutil.copytree(old, dest, symlinks=True)
    relocate.relocate(str(dest), str(dest))
    (dest / "lib/keep.py").write_text("edited\n")
    (dest / "lib/extra.py").write_text("x\n")
    before = snapshot(dest)
    with pytest.raises(engine.UpdateError) as caught:
        engine.apply(str(dest), str(update), str(tmp_path / "app" / "aside"))
    assert "lib/extra.py (added)" in str(caught.value)
    assert "lib/keep.py (changed)" in str(caught.value)
    assert caught.value.code == 5
    assert snapshot(dest) == before
    assert not (update / "new").exists()


def test_applying_twice_is_refused_as_already_updated(tmp_path: Path) -> None:
    old = make_env(tmp_path / "old", OLD_FILES)
    update = stage(tmp_path, old, make_env(tmp_path / "new", NEW_FILES))
    again = tmp_path / "again"
    shutil.copytree(update, again, symlinks=True)
    dest = tmp_path / "app" / "env"
    shutil.copytree(old, dest, symlinks=True)
    relocate.relocate(str(dest), str(dest))
    engine.apply(str(dest), str(update), str(tmp_path / "app" / "aside"))
    before = snapshot(dest)
    with pytest.raises(engine.UpdateError, match="already updated"):
        engine.apply(str(dest), str(again), str(tmp_path / "app" / "aside2"))
    assert snapshot(dest) == before


def test_an_env_moved_without_relocation_is_refused(tmp_path: Path) -> None:
    old = make_env(tmp_path / "old", OLD_FILES)
    update = stage(tmp_path, old, make_env(tmp_path / "new", NEW_FILES))
    first = tmp_path / "app" / "env"
    shutil.copytree(old, first, symlinks=True)
    relocate.relocate(str(first), str(first))
    moved = tmp_path / "moved"
    first.rename(moved)
    with pytest.raises(engine.UpdateError, match=r"was moved from .* and not relocated") as caught:
        engine.apply(str(moved), str(update), str(tmp_path / "aside"))
    assert "portenv-relocate" in caught.value.hint

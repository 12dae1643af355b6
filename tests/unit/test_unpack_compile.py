"""``--compile``: the unpackers write the bytecode of every module that has none, on the target.

An archive may carry bytecode for the standard library only; an environment installed once
for users who cannot write into it (root unpacking into /opt) would then compile every other
module at every start of every user. The environment here is small but real on the target
side: its interpreter is a sh wrapper around the host python, its ``.portenv/`` holds the
relocation engine and the bytecode worker portenv ships, so the sh unpacker runs them under
dash and busybox exactly as on a target.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portenv.errors import RelocationError
from portenv.target import relocate
from portenv.target import update as engine
from portenv.target.pyc_worker import PER_WORKER, checked_hash_pyc, compile_in_parallel
from portenv.unpack import UnpackRequest, unpack
from portenv.write.delta import Tree, plan_delta, stage_update
from tests.support.unpacksh import Env, Shell, Unpacker, build_tar
from tests.unit.test_unpack_py import payload_of, write_archive

TARGET = Path(relocate.__file__).parent
HOLDER = relocate.placeholder(255)
TAG = sys.implementation.cache_tag
SITE = "lib/python3/site-packages"
STDLIB_PYC = f"lib/python3/__pycache__/stdmod.{TAG}.pyc"
JOBS = ("--compile", "--jobs=2")
FAILING_WORKER = b"""#!/bin/sh
case "$1 $2" in "-B -s") echo "worker: cannot run here" >&2; exit 3 ;; esac
"""


def make_env(root: Path, python: bytes | None = None) -> Path:
    """A payload-form env: a module with its shipped bytecode (the standard library's case),
    site-packages modules without, one that does not compile, a rewritten text .py."""
    wrapper = python or b"#!/bin/sh\n"
    files = {
        "bin/python3": wrapper + f'exec "{sys.executable}" "$@"\n'.encode(),
        "lib/python3/stdmod.py": b"STD = 1\n",
        f"{SITE}/mod.py": b"VALUE = 'compiled on the target'\n",
        f"{SITE}/pkg/__init__.py": b"from . import sub\n",
        f"{SITE}/pkg/sub.py": b"X = [i * i for i in range(3)]\n",
        f"{SITE}/broken.py": b"def broken(:\n",
        f"{SITE}/where.py": f"PREFIX = '{HOLDER}'\n".encode(),
        ".portenv/relocate.py": (TARGET / "relocate.py").read_bytes(),
        ".portenv/pyc_worker.py": (TARGET / "pyc_worker.py").read_bytes(),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "bin/python3").chmod(0o755)
    shipped = checked_hash_pyc(files["lib/python3/stdmod.py"], "lib/python3/stdmod.py")
    (root / STDLIB_PYC).parent.mkdir()
    (root / STDLIB_PYC).write_bytes(shipped)
    manifest = {
        "format": 1,
        "prefix": HOLDER,
        "prefix_max": 255,
        "python": "bin/python3",
        "files": [{"path": f"{SITE}/where.py", "mode": "text"}],
    }
    (root / ".portenv/manifest.json").write_text(json.dumps(manifest))
    return root


def archive_of(tmp: Path, name: str, python: bytes | None = None) -> bytes:
    payload, files = payload_of(make_env(tmp / f"{name}-tree", python))
    path = write_archive(tmp / f"{name}.tar", payload, files, python="bin/python3")
    return path.read_bytes()


def pyc(dest: Path, source: str) -> Path:
    folder, name = os.path.split(source)
    return dest / folder / "__pycache__" / f"{name[:-3]}.{TAG}.pyc"


def assert_checked_hash(dest: Path, source: str) -> None:
    """A valid checked-hash .pyc of `source`: magic, flags 0b11, the source's hash."""
    data = pyc(dest, source).read_bytes()
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b11
    assert data[8:16] == importlib.util.source_hash((dest / source).read_bytes())


def loaded_from_bytecode(dest: Path, module: str, source: str = "") -> bool:
    """The env's python imports `module` (in `source`, default site-packages' MODULE.py)
    from its .pyc (``-v``: "PYC matches SOURCE")."""
    code = f"import sys; sys.path.insert(0, {str(dest / SITE)!r}); import {module}"
    done = subprocess.run(
        [str(dest / "bin/python3"), "-B", "-I", "-v", "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return f"{pyc(dest, source or f'{SITE}/{module}.py')} matches" in done.stderr


@pytest.fixture(params=["dash", "busybox"])
def target_up(request: pytest.FixtureRequest, busybox_bin: Path | None, tmp_path: Path) -> Unpacker:
    """The sh unpacker under dash and busybox (busybox's applets first on PATH), as env.sh."""
    exe = shutil.which(request.param)
    if exe is None:
        pytest.fail(f"{request.param} is not installed: run scripts/bootstrap.sh --tests")
    path = os.environ.get("PATH", "/usr/bin:/bin")
    if request.param == "busybox":
        assert busybox_bin is not None
        return Unpacker(Shell("busybox", (exe, "sh"), f"{busybox_bin}:{path}"), "sh", tmp_path)
    return Unpacker(Shell("dash", (exe,), path), "tar", tmp_path)


MODULES = [f"{SITE}/mod.py", f"{SITE}/pkg/__init__.py", f"{SITE}/pkg/sub.py"]


def test_compile_writes_checked_hash_bytecode_where_there_is_none(
    target_up: Unpacker, tmp_path: Path
) -> None:
    archive = archive_of(tmp_path, "env")
    res = target_up.unpack(archive, "-o", str(tmp_path / "opt"), "--compile", "-j", "2")
    assert res.code == 0, res.stderr
    dest = tmp_path / "opt" / "env"
    for source in [*MODULES, f"{SITE}/where.py"]:
        assert_checked_hash(dest, source)
    shipped = (tmp_path / "env-tree" / STDLIB_PYC).read_bytes()
    assert (dest / STDLIB_PYC).read_bytes() == shipped  # what the archive carries is kept
    assert not pyc(dest, f"{SITE}/broken.py").exists()  # not fatal: Python reports it on import
    assert not (dest / ".portenv/__pycache__").exists()
    assert loaded_from_bytecode(dest, "mod")
    assert loaded_from_bytecode(dest, "pkg", f"{SITE}/pkg/sub.py")


def test_without_compile_only_the_rewritten_source_gets_bytecode(
    target_up: Unpacker, tmp_path: Path
) -> None:
    res = target_up.unpack(archive_of(tmp_path, "env"), "-o", str(tmp_path / "opt"))
    assert res.code == 0, res.stderr
    dest = tmp_path / "opt" / "env"
    assert_checked_hash(dest, f"{SITE}/where.py")  # the relocation rewrote it
    assert not any(pyc(dest, source).exists() for source in MODULES)
    assert not loaded_from_bytecode(dest, "mod")


def test_a_compiler_that_does_not_start_leaves_nothing(target_up: Unpacker, tmp_path: Path) -> None:
    archive = archive_of(tmp_path, "env", FAILING_WORKER)
    out = tmp_path / "opt"
    res = target_up.unpack(archive, "-o", str(out), "--compile")
    assert res.code == 8
    assert res.first.startswith("error: compiling the bytecode failed: ")
    assert "worker: cannot run here" in res.first
    assert res.stderr.count("error:") == 1
    assert "leave out --compile" in res.last and "was left as it was" in res.last
    assert not out.exists()


def tree_of(root: Path) -> Tree:
    return Tree(
        engine.tree_listing(str(root)), json.loads((root / ".portenv/manifest.json").read_text())
    )


def test_a_compiled_env_still_accepts_its_update(target_up: Unpacker, tmp_path: Path) -> None:
    """The update engine's check (run as the unpacker runs it) takes the bytecode --compile
    wrote for the env's own sources as derived; a module added since is still refused."""
    res = target_up.unpack(archive_of(tmp_path, "env"), "-o", str(tmp_path / "opt"), "--compile")
    assert res.code == 0, res.stderr
    dest = tmp_path / "opt" / "env"
    new = make_env(tmp_path / "new-tree")
    (new / f"{SITE}/mod.py").write_text("VALUE = 'updated'\n")
    plan = plan_delta(tree_of(tmp_path / "env-tree"), tree_of(new)).to_json()

    def check() -> subprocess.CompletedProcess[str]:
        argv = [str(dest / "bin/python3"), "-I", "-S", "-B", engine.__file__, str(dest), "-", "-"]
        return subprocess.run(
            [*argv, "--check"], input=json.dumps(plan), capture_output=True, text=True, check=False
        )

    assert check().returncode == 0, check().stderr
    (dest / f"{SITE}/extra.py").write_text("EXTRA = 1\n")
    refused = check()
    assert refused.returncode == 5
    assert f"{SITE}/extra.py (added)" in refused.stderr
    assert "mod" not in refused.stderr


def compiled_update(tmp_path: Path) -> tuple[Path, Path]:
    """(an env unpacked and compiled, an update of it that changes mod.py and adds added.py)."""
    old, new = make_env(tmp_path / "old"), make_env(tmp_path / "new")
    (new / f"{SITE}/mod.py").write_text("VALUE = 'updated'\n")
    (new / f"{SITE}/added.py").write_text("ADDED = 1\n")
    plan = plan_delta(tree_of(old), tree_of(new))
    folder = tmp_path / "update"
    for path in plan.ship:
        (folder / ".portenv-update/files" / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(new / path, folder / ".portenv-update/files" / path)
    stage_update(folder, plan)
    shutil.copytree(folder, tmp_path / "again", symlinks=True)
    dest = tmp_path / "app" / "env"
    shutil.copytree(old, dest, symlinks=True)
    relocate.relocate(str(dest), str(dest))
    relocate.compile_missing(str(dest))
    assert_checked_hash(dest, f"{SITE}/mod.py")
    return dest, folder


def apply_update(dest: Path, folder: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """The update's engine as the sh unpacker runs it."""
    aside = dest.parent / f"aside-{folder.name}"
    return subprocess.run(
        [sys.executable, engine.__file__, str(dest), str(folder), str(aside), *options],
        capture_output=True,
        text=True,
        check=False,
    )


def test_an_update_applied_with_compile_compiles_the_new_tree(tmp_path: Path) -> None:
    dest, folder = compiled_update(tmp_path)
    done = apply_update(dest, folder, *JOBS)
    assert done.returncode == 0, done.stderr
    assert (dest / f"{SITE}/mod.py").read_text() == "VALUE = 'updated'\n"
    for source in [*MODULES, f"{SITE}/added.py"]:
        assert_checked_hash(dest, source)


def test_an_update_keeps_the_bytecode_of_the_sources_it_keeps(tmp_path: Path) -> None:
    """Without --compile, the bytecode of unchanged sources stays (valid as it is), that of a
    changed source goes; the updated env is then taken as updated."""
    dest, folder = compiled_update(tmp_path)
    done = apply_update(dest, folder)
    assert done.returncode == 0, done.stderr
    for source in MODULES[1:]:  # pkg/__init__.py and pkg/sub.py are kept
        assert_checked_hash(dest, source)
    assert not pyc(dest, f"{SITE}/mod.py").exists()
    assert not pyc(dest, f"{SITE}/added.py").exists()
    again = apply_update(dest, tmp_path / "again")
    assert again.returncode == 5
    assert "already updated" in again.stderr


def test_the_python_unpacker_compiles_too(tmp_path: Path) -> None:
    archive = tmp_path / "env.tar"
    archive.write_bytes(archive_of(tmp_path, "env"))
    plain = unpack(UnpackRequest(archive, tmp_path / "plain"))
    assert not pyc(plain.path, f"{SITE}/mod.py").exists()
    done = unpack(UnpackRequest(archive, tmp_path / "opt", compile_bytecode=True))
    for source in MODULES:
        assert_checked_hash(done.path, source)
    broken = tmp_path / "broken.tar"
    broken.write_bytes(archive_of(tmp_path, "broken", FAILING_WORKER))
    with pytest.raises(RelocationError, match=r"compiling the bytecode failed: .*cannot run"):
        unpack(UnpackRequest(broken, tmp_path / "none", compile_bytecode=True))
    assert not (tmp_path / "none").exists()


def test_the_workers_run_at_the_same_time(tmp_path: Path) -> None:
    """Each worker gets its names before any result is read: two workers that take a second
    each finish in about one (fed one after the other, they took two)."""
    sources = [f"m{i}.py" for i in range(2 * PER_WORKER)]
    for name in sources:
        (tmp_path / name).write_text("X = 1\n")
    worker = ["sh", "-c", "cat >/dev/null; sleep 1; echo compiled 1 reused 0 held 0 failed 0"]
    start = time.monotonic()
    counts, problems = compile_in_parallel(worker, str(tmp_path), sources, 2, {})
    assert time.monotonic() - start < 1.8
    assert (counts["compiled"], problems) == (2, [])
    failing = ["sh", "-c", "cat >/dev/null; echo first >&2; echo 'last line' >&2; exit 3"]
    assert compile_in_parallel(failing, str(tmp_path), sources, 2, {})[1] == ["last line"] * 2
    with pytest.raises(OSError):
        compile_in_parallel([str(tmp_path / "nothing")], str(tmp_path), sources, 2, {})


def test_portenv_relocate_compiles_an_env_in_place(target_up: Unpacker, tmp_path: Path) -> None:
    res = target_up.unpack(archive_of(tmp_path, "env"), "-o", str(tmp_path / "opt"))
    assert res.code == 0, res.stderr
    dest = tmp_path / "opt" / "env"
    done = subprocess.run(
        [str(dest / "bin/python3"), str(dest / ".portenv/relocate.py"), "--compile", "-j", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "portenv: compiled 3 modules (1 did not compile)" in done.stderr
    for source in MODULES:
        assert_checked_hash(dest, source)


OLD_RELOCATE = """\
import sys
if "--compile" in sys.argv:
    sys.stderr.write("usage: portenv-relocate [--to PREFIX] [--quiet]\\n")
    sys.stderr.write("error: unexpected argument '--compile'\\n")
    sys.exit(2)
"""


def test_an_archive_whose_relocation_predates_compile(target_up: Unpacker, tmp_path: Path) -> None:
    """A newer portenv-unpack on an older env.tar: one line that names what was refused."""
    archive = build_tar(Env(relocate=OLD_RELOCATE))
    res = target_up.unpack(archive, "-o", str(tmp_path / "opt"), "--compile")
    assert res.code == 8
    dest = tmp_path / "opt" / "env"
    assert res.first == (
        f"error: relocating the environment to {dest} failed: unexpected argument '--compile'"
    )
    assert not (tmp_path / "opt").exists()
    assert target_up.unpack(archive, "-o", str(tmp_path / "opt")).code == 0

"""The environment's bytecode: valid checked-hash .pyc files, the same bytes however compiled."""

from __future__ import annotations

import importlib.util
import marshal
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portenv.model import StagedPrefix, Subdir
from portenv.pack.chain import _compiler
from portenv.platforms import host_subdir
from portenv.seal.bytecode import Bytecode, clear_bytecode, compile_prefix, find_compiler
from portenv.stage import make_placeholder
from portenv.target.pyc_worker import canonical_refs, checked_hash_pyc
from tests.support.pyrelocate import installed_pythons
from tests.unit.test_fetch import RecordingReporter

PLACEHOLDER = make_placeholder(40)
HERE = "{}.{}".format(*sys.version_info[:2])
SOURCE = b"""\
NAMES = frozenset({'alpha', 'beta', 'gamma'})
def check(x):
    return x in {'alpha', 'beta', 'gamma'} or x in ('one', 2, 3.0)
class Thing:
    def method(self):
        return [check(n) for n in NAMES], 10**20, -0.0, 1j
"""


def running() -> Bytecode:
    return Bytecode(Path(sys.executable), HERE, sys.version)


def test_canonical_refs_keep_the_code_and_drop_unused_flags() -> None:
    code = compile(SOURCE, "mod.py", "exec")
    data = marshal.dumps(code)
    canonical = canonical_refs(data, sys.version_info[:2])
    assert len(canonical) == len(data), "only flag bits and reference numbers change"
    assert marshal.loads(canonical) == code
    assert canonical_refs(canonical, sys.version_info[:2]) == canonical
    kept = sum(1 for b in canonical if b & 0x80)
    assert kept < sum(1 for b in data if b & 0x80), "objects nothing refers back to lose the flag"


def test_a_pyc_is_checked_hash_and_runs() -> None:
    data = checked_hash_pyc(SOURCE, "lib/mod.py")
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert data[4:8] == (3).to_bytes(4, "little")
    assert data[8:16] == importlib.util.source_hash(SOURCE)
    code = marshal.loads(data[16:])
    assert code.co_filename == "lib/mod.py", "the path inside the env, not the staging folder"
    namespace: dict[str, object] = {}
    exec(code, namespace)
    assert namespace["NAMES"] == frozenset({"alpha", "beta", "gamma"})


def make_tree(root: Path) -> None:
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_bytes(SOURCE)
    (root / "pkg" / "__pycache__" / "__init__.cpython-39.pyc").write_bytes(b"stale")
    (root / "pkg" / "prefixed.py").write_text(f"PREFIX = {PLACEHOLDER!r}\n")
    (root / "pkg" / "__pycache__" / "prefixed.cpython-39.pyc").write_bytes(b"stale")
    (root / "pkg" / "broken.py").write_text("def (:\n")
    (root / "pkg" / "sourceless.pyc").write_bytes(b"kept")
    (root / "pkg" / "alias.py").symlink_to("__init__.py")
    (root / "pkg" / "outside.py").symlink_to("/nonexistent/x.py")
    (root / ".portenv").mkdir()
    (root / ".portenv" / "relocate.py").write_text("print('run as a script')\n")


def test_clear_bytecode_removes_the_old_caches_only(tmp_path: Path) -> None:
    make_tree(tmp_path)
    sources = clear_bytecode(tmp_path)
    assert sources == ["pkg/__init__.py", "pkg/alias.py", "pkg/broken.py", "pkg/prefixed.py"]
    assert not list((tmp_path / "pkg" / "__pycache__").iterdir())
    assert (tmp_path / "pkg" / "sourceless.pyc").read_bytes() == b"kept"


def test_compile_prefix_leaves_what_holds_the_placeholder(tmp_path: Path) -> None:
    make_tree(tmp_path)
    counts = compile_prefix(tmp_path, running(), PLACEHOLDER)
    assert (counts.compiled, counts.held, counts.failed) == (2, 1, 1)
    cache = sorted(p.name for p in (tmp_path / "pkg" / "__pycache__").iterdir())
    assert cache == [
        Path(importlib.util.cache_from_source(n)).name for n in ("__init__.py", "alias.py")
    ]
    assert PLACEHOLDER.encode() not in (tmp_path / "pkg" / "__pycache__" / cache[0]).read_bytes()
    assert not (tmp_path / ".portenv" / "__pycache__").exists()


def stdlib_tree(root: Path) -> Path:
    """A prefix's library: the stdlib, site-packages with a start-up hook, a package."""
    lib = root / "lib" / "python3.12"
    site = lib / "site-packages"
    for name, text in {
        "json/__init__.py": "X = 1\n",
        "os.py": "X = 1\n",
        "site-packages/hook.py": "X = 1\n",
        "site-packages/dotted/__init__.py": "X = 1\n",
        "site-packages/dotted/sub.py": "X = 1\n",
        "site-packages/numpy/__init__.py": "X = 1\n",
        "site-packages/numpy/linalg.py": "X = 1\n",
        "site-packages/hooks.pth": "import hook; hook.X\nimport\tdotted.sub, os\n# import numpy\n",
        "site-packages/paths.pth": "numpy\n",
    }.items():
        (lib / name).parent.mkdir(parents=True, exist_ok=True)
        (lib / name).write_text(text)
    return site


def test_the_stdlib_scope_compiles_what_every_start_may_import(tmp_path: Path) -> None:
    site = stdlib_tree(tmp_path)
    compiler = Bytecode(Path(sys.executable), HERE, sys.version, scope="stdlib")
    assert compile_prefix(tmp_path, compiler, PLACEHOLDER).compiled == 4
    compiled = sorted(
        f"{p.parent.parent.relative_to(tmp_path)}/{p.name.split('.')[0]}"
        for p in tmp_path.rglob("*.pyc")
    )
    assert compiled == [
        "lib/python3.12/json/__init__",
        "lib/python3.12/os",
        "lib/python3.12/site-packages/dotted/__init__",
        "lib/python3.12/site-packages/hook",
    ]
    assert not (site / "numpy" / "__pycache__").exists(), "no .pth imports it"


def test_the_all_scope_compiles_site_packages_too(tmp_path: Path) -> None:
    stdlib_tree(tmp_path)
    assert compile_prefix(tmp_path, running(), PLACEHOLDER).compiled == 7


def test_the_bytecode_cache_gives_the_same_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        make_tree(tmp_path / name)
    compiler = Bytecode(Path(sys.executable), HERE, sys.version, tmp_path / "cache")
    assert compile_prefix(tmp_path / "a", compiler, PLACEHOLDER).compiled == 2
    counts = compile_prefix(tmp_path / "b", compiler, PLACEHOLDER)
    assert (counts.compiled, counts.reused) == (0, 2)
    pyc = Path(importlib.util.cache_from_source("pkg/__init__.py"))
    assert (tmp_path / "a" / pyc).read_bytes() == (tmp_path / "b" / pyc).read_bytes()


def stdlib_sample(python: Path, minor: str, dest: Path) -> int:
    """~200 modules of ``python``'s standard library copied into ``dest``."""
    stdlib = python.resolve().parent.parent / "lib" / f"python{minor}"
    files = sorted(stdlib.glob("*.py"))[:150]
    for package in ("email", "asyncio", "json", "xml"):
        files += sorted(stdlib.glob(f"{package}/**/*.py"))
    for path in files:
        target = dest / path.relative_to(stdlib)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return len(files)


@pytest.mark.parametrize("minor", ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"])
def test_the_same_bytes_whatever_the_order_and_the_workers(tmp_path: Path, minor: str) -> None:
    """One worker compiling all, or three compiling parts in another order: same bytes."""
    python = installed_pythons([minor]).get(minor)
    if python is None:
        pytest.fail(f"no CPython {minor} found (pyenv or PATH): the test needs it")
    count = stdlib_sample(python, minor, tmp_path / "one")
    assert count > 192
    shutil.copytree(tmp_path / "one", tmp_path / "three")
    compiler = Bytecode(python, minor, minor)
    compile_prefix(tmp_path / "one", compiler, PLACEHOLDER, jobs=1)
    compile_prefix(tmp_path / "three", compiler, PLACEHOLDER, jobs=3)
    one = {
        p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*.pyc")
    }
    three = {
        p.relative_to(tmp_path / "three"): p.read_bytes()
        for p in (tmp_path / "three").rglob("*.pyc")
    }
    assert len(one) >= count - 2
    assert one == three


def staged(tmp_path: Path, subdir: str, python: str) -> StagedPrefix:
    return StagedPrefix(tmp_path, PLACEHOLDER, Subdir(subdir), f"bin/python{python}")


def test_the_env_compiles_with_its_own_python(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / f"python{HERE}").symlink_to(sys.executable)
    found = find_compiler(staged(tmp_path, host_subdir(), HERE))
    assert isinstance(found, Bytecode)
    assert found.python == tmp_path / "bin" / f"python{HERE}" and found.version == HERE


def test_an_env_python_that_does_not_run_here_gives_way_to_a_local_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conda python for a newer glibc than the build machine's, say: same X.Y, or none."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / f"python{HERE}").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / f"python{HERE}").chmod(0o755)
    found = find_compiler(staged(tmp_path, host_subdir(), HERE))
    assert isinstance(found, Bytecode) and found.python == Path(sys.executable)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    (tmp_path / "bin" / "python3.7").symlink_to(f"python{HERE}")
    found = find_compiler(staged(tmp_path, host_subdir(), "3.7"))
    assert isinstance(found, str) and "no CPython 3.7 that runs on this machine" in found


FOREIGN = "linux-aarch64" if host_subdir() != "linux-aarch64" else "linux-64"


def test_a_foreign_env_compiles_with_a_local_python_of_its_version(tmp_path: Path) -> None:
    found = find_compiler(staged(tmp_path, FOREIGN, HERE), [])
    assert isinstance(found, Bytecode) and found.version == HERE
    assert found.identity == sys.version


def test_a_foreign_env_without_a_local_python_of_its_version_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    found = find_compiler(staged(tmp_path, FOREIGN, "3.7"), [])
    assert isinstance(found, str) and "no CPython 3.7 that runs on this machine" in found


def test_a_local_python_with_another_magic_number_is_not_taken(tmp_path: Path) -> None:
    """The magic number of what the target's python shipped wins over a same X.Y."""
    cache = tmp_path / "lib" / f"python{HERE}" / "__pycache__"
    cache.mkdir(parents=True)
    tag = HERE.replace(".", "")
    (cache / f"os.cpython-{tag}.pyc").write_bytes(b"\x00\x00\r\n" + bytes(12))
    found = find_compiler(staged(tmp_path, FOREIGN, HERE), [])
    assert isinstance(found, str)


def test_the_worker_runs_under_python_3_8(tmp_path: Path) -> None:
    """The worker is written for the oldest CPython portenv packs."""
    python = installed_pythons(["3.8"]).get("3.8")
    if python is None:
        pytest.fail("no CPython 3.8 found (pyenv or PATH): the test needs it")
    (tmp_path / "m.py").write_bytes(SOURCE)
    counts = compile_prefix(tmp_path, Bytecode(python, "3.8", "3.8"), PLACEHOLDER)
    assert counts.compiled == 1
    done = subprocess.run(
        [str(python), "-c", "import m; print(m.check('beta'))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "True\n"


def test_a_pack_without_a_compiler_warns_once_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    reporter = RecordingReporter()
    assert _compiler(staged(tmp_path, FOREIGN, "3.7"), "all", tmp_path, reporter) is None
    assert [kind for kind, _ in reporter.calls] == ["warning"]
    assert "packing without bytecode: no CPython 3.7" in str(reporter.calls[0][1])
    found = _compiler(staged(tmp_path, FOREIGN, HERE), "stdlib", tmp_path, reporter)
    assert found is not None and found.cache == tmp_path / "bytecode"
    assert found.scope == "stdlib"
    assert _compiler(staged(tmp_path, FOREIGN, HERE), "none", tmp_path, reporter) is None
    assert len(reporter.calls) == 1, "no compiler is looked for, and no warning, with none"


def test_no_pip_without_python_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pip comes from ensurepip for --python packs only: a pixi project's lock says."""
    from portenv.cli import main

    assert main(["pack", str(tmp_path), "--no-pip", "-o", str(tmp_path / "env.sh")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "error: --no-pip applies to --python packs only"
    assert err[1].startswith("  hint: ")
    assert not (tmp_path / "env.sh").exists()

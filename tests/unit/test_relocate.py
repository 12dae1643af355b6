"""The relocation engine that runs on the target (src/portenv/target/relocate.py)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from portenv.seal.manifest import binary_regions
from portenv.target import relocate as engine
from portenv.target.pyc_worker import checked_hash_pyc

OLD = "/portenv_placehold_portenv_placehold"


def make_env(root: Path, files: dict[str, bytes], *, prefix_max: int = len(OLD)) -> None:
    """An env folder with a manifest built the way seal builds it."""
    entries = []
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        if b"\0" in content:
            regions = [list(r) for r in binary_regions(content, OLD.encode())]
            entries.append({"path": relative, "mode": "binary", "regions": regions})
        else:
            entries.append({"path": relative, "mode": "text"})
    (root / ".portenv").mkdir(exist_ok=True)
    manifest = {
        "format": 1,
        "prefix": OLD,
        "prefix_max": prefix_max,
        "python": "bin/python3",
        "files": entries,
    }
    (root / ".portenv" / "manifest.json").write_text(json.dumps(manifest))


def prefix_of(root: Path) -> str:
    data = json.loads((root / ".portenv" / "manifest.json").read_text())
    return str(data["prefix"])


def test_text_file_gets_every_occurrence(tmp_path: Path) -> None:
    make_env(tmp_path, {"etc/a.conf": f"x={OLD}/lib\ny={OLD}\n".encode()})
    assert engine.relocate(str(tmp_path), "/app/env") == 1
    assert (tmp_path / "etc/a.conf").read_text() == "x=/app/env/lib\ny=/app/env\n"
    assert prefix_of(tmp_path) == "/app/env"


def test_binary_region_is_nul_padded_and_keeps_length(tmp_path: Path) -> None:
    blob = b"\x7fELF\0" + f"{OLD}/share/x\0".encode() + b"TAIL\0"
    make_env(tmp_path, {"bin/tool": blob})
    engine.relocate(str(tmp_path), "/opt/e")
    data = (tmp_path / "bin/tool").read_bytes()
    assert len(data) == len(blob)
    assert data.startswith(b"\x7fELF\0/opt/e/share/x\0")
    assert data.endswith(b"TAIL\0")
    region = data[5 : 5 + len(OLD) + len("/share/x")]
    assert region.rstrip(b"\0") == b"/opt/e/share/x"


def test_several_occurrences_in_one_c_string(tmp_path: Path) -> None:
    blob = b"\0" + f"{OLD}/lib:{OLD}/lib64\0".encode() + b"\0"
    make_env(tmp_path, {"lib/libx.so": blob})
    engine.relocate(str(tmp_path), "/a")
    assert (tmp_path / "lib/libx.so").read_bytes().split(b"\0")[1] == b"/a/lib:/a/lib64"


def test_relocating_again_and_again(tmp_path: Path) -> None:
    blob = b"\0" + f"{OLD}/x\0".encode()
    make_env(tmp_path, {"bin/b": blob, "etc/t": f"{OLD}\n".encode()})
    for target in ["/first/env", "/s", "/third/longer/path/env", "/4"]:
        engine.relocate(str(tmp_path), target)
        assert (tmp_path / "etc/t").read_text() == f"{target}\n"
        assert (tmp_path / "bin/b").read_bytes().split(b"\0")[1] == f"{target}/x".encode()
        assert prefix_of(tmp_path) == target
    assert len((tmp_path / "bin/b").read_bytes()) == len(blob)


def test_too_long_destination_is_refused_before_any_write(tmp_path: Path) -> None:
    blob = b"\0" + f"{OLD}/x\0".encode()
    make_env(tmp_path, {"a.txt": f"{OLD}\n".encode(), "bin/b": blob})
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(engine.RelocationError, match="longer than"):
        engine.relocate(str(tmp_path), "/" + "d" * len(OLD))
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_region_overflow_is_refused_even_within_prefix_max(tmp_path: Path) -> None:
    blob = b"\0" + f"{OLD}:{OLD}\0".encode()
    make_env(tmp_path, {"bin/b": blob}, prefix_max=10_000)
    with pytest.raises(engine.RelocationError, match="reserved"):
        engine.relocate(str(tmp_path), "/" + "x" * (len(OLD) + 5))
    assert (tmp_path / "bin/b").read_bytes() == blob


@pytest.mark.parametrize("bad", ['/a"b', "/a$b", "/a`b", "/a\\b", "/a\nb", "relative/path"])
def test_unsafe_destinations_are_refused(tmp_path: Path, bad: str) -> None:
    make_env(tmp_path, {"t": f"{OLD}\n".encode()})
    with pytest.raises(engine.RelocationError):
        engine.relocate(str(tmp_path), bad)
    assert (tmp_path / "t").read_text() == f"{OLD}\n"


def test_mode_bits_are_kept_and_the_inode_is_replaced(tmp_path: Path) -> None:
    make_env(tmp_path, {"bin/run": f"#!{OLD}/bin/python3\nprint(1)\n".encode()})
    script = tmp_path / "bin/run"
    script.chmod(0o755)
    inode = script.stat().st_ino
    engine.relocate(str(tmp_path), "/e")
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert script.stat().st_ino != inode, "files must be replaced by rename, never written in place"
    assert not [p for p in tmp_path.rglob(".portenv-reloc-*")]


def test_short_shebang_stays_a_shebang() -> None:
    out = engine.rewrite_text(f"#!{OLD}/bin/python3.12\nx\n".encode(), OLD.encode(), b"/e")
    assert out == b"#!/e/bin/python3.12\nx\n"


def test_long_shebang_becomes_a_sh_trampoline() -> None:
    new = "/" + "n" * 150
    out = engine.rewrite_text(
        f"#!{OLD}/bin/python3.12\nimport x\n".encode(), OLD.encode(), new.encode()
    )
    lines = out.decode().splitlines()
    assert lines[0] == "#!/bin/sh"
    assert lines[1] == f'\'\'\'exec\' "{new}/bin/python3.12" "$0" "$@"'
    assert lines[2] == "' '''"
    assert lines[3] == "import x"


def test_shebang_with_space_becomes_a_trampoline() -> None:
    out = engine.rewrite_text(f"#!{OLD}/bin/python3\n".encode(), OLD.encode(), b"/my apps/env")
    assert out.splitlines()[1] == b'\'\'\'exec\' "/my apps/env/bin/python3" "$0" "$@"'


def test_non_python_long_shebang_is_left_alone() -> None:
    new = b"/" + b"p" * 150
    out = engine.rewrite_text(f"#!{OLD}/bin/perl\n".encode(), OLD.encode(), new)
    assert out == b"#!" + new + b"/bin/perl\n"


def test_trampoline_runs_under_sh(tmp_path: Path) -> None:
    """The trampoline is valid sh and valid Python: sh execs python on the same file."""
    python = os.path.realpath(sys.executable)
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "my env"
    (deep / "bin").mkdir(parents=True)
    (deep / "bin" / "python3").symlink_to(python)
    script = deep / "bin" / "hello"
    text = f"#!{OLD}/bin/python3\nimport sys\nprint('ran', sys.argv[1:])\n"
    script.write_bytes(engine.rewrite_text(text.encode(), OLD.encode(), str(deep).encode()))
    script.chmod(0o755)

    done = subprocess.run([str(script), "a b"], capture_output=True, text=True, check=True)
    assert done.stdout == "ran ['a b']\n"


def test_main_reports_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "env"
    make_env(root, {"t": f"{OLD}\n".encode()})
    (root / ".portenv" / "relocate.py").write_text("")
    monkey_file = str(root / ".portenv" / "relocate.py")
    original = engine.__file__
    engine.__file__ = monkey_file
    try:
        assert engine.main(["--to", "/x$y", "--quiet"]) == 1
        assert engine.main(["--to", "/ok/env", "--quiet"]) == 0
    finally:
        engine.__file__ = original
    err = capsys.readouterr().err
    assert err.startswith("error: relocation failed: destination holds characters")
    assert (root / "t").read_text() == "/ok/env\n"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--to", "/a b"], ("/a b", False, False, None)),
        (["--to=/x", "--quiet"], ("/x", True, False, None)),
        (["--quiet"], (None, True, False, None)),
        (["--compile", "-j", "3"], (None, False, True, "3")),
        (["--jobs=2", "--compile"], (None, False, True, "2")),
        ([], (None, False, False, None)),
    ],
)
def test_options_are_parsed(
    argv: list[str], expected: tuple[str | None, bool, bool, str | None]
) -> None:
    options = engine._parse(argv)
    assert (options.to, options.quiet, options.compile, options.jobs) == expected


@pytest.mark.parametrize(
    "argv", [["--to"], ["--frobnicate"], ["/path"], ["--jobs"], ["--jobs=0"], ["-j", "x"]]
)
def test_bad_options_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert engine.main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("usage: portenv-relocate") and err[1].startswith("error: ")


def test_engine_start_imports_only_what_it_needs() -> None:
    """Every unpack runs the engine once: heavy modules would cost each of them."""
    code = f"import runpy, sys; runpy.run_path({engine.__file__!r}); print(*sorted(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-E", "-s", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    loaded = set(done.stdout.split())
    assert "json" in loaded  # the manifest's format: proves the engine was loaded
    assert not loaded & {"argparse", "tempfile", "shutil", "random", "gettext"}, loaded


SET_FREE = b"PATHS = {'prefix': '/opt/app/env', 'lib': ['a', 'b']}\n"
WITH_A_SET = b"def ok(x):\n    return x in {'alpha', 'beta', 'gamma', 'delta'}\n"


def test_rewritten_sources_compile_in_the_relocating_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unpacker's relocation runs under the env's python: the sources it rewrote are
    compiled in that process (no second interpreter), except code whose bytecode depends on
    the hash seed, which still goes to a worker with a fixed one."""
    make_env(tmp_path, {"lib/conf.py": SET_FREE, "lib/check.py": WITH_A_SET})
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").symlink_to(sys.executable)
    sent: list[list[str]] = []
    monkeypatch.setattr(engine, "_compile", lambda _w, _r, sources, _m, _j: sent.append(sources))
    manifest = json.loads((tmp_path / ".portenv" / "manifest.json").read_text())
    engine.compile_sources(str(tmp_path), ["lib/conf.py", "lib/check.py"], manifest)
    assert sent == [["lib/check.py"]], "only the code holding a frozenset needs a worker"
    pyc = tmp_path / "lib" / "__pycache__" / f"conf.{sys.implementation.cache_tag}.pyc"
    assert pyc.read_bytes() == checked_hash_pyc(SET_FREE, "lib/conf.py")
    assert not list((tmp_path / "lib" / "__pycache__").glob("check.*"))


def test_another_python_leaves_every_source_to_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_env(tmp_path, {"lib/conf.py": SET_FREE})
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").write_text("#!/bin/sh\n")
    sent: list[list[str]] = []
    monkeypatch.setattr(engine, "_compile", lambda _w, _r, sources, _m, _j: sent.append(sources))
    manifest = json.loads((tmp_path / ".portenv" / "manifest.json").read_text())
    engine.compile_sources(str(tmp_path), ["lib/conf.py"], manifest)
    assert sent == [["lib/conf.py"]]


@pytest.mark.parametrize("seed", ["1", "2", "random"])
def test_seedless_bytecode_is_the_seeded_bytes_or_none(tmp_path: Path, seed: str) -> None:
    """What the relocation writes in its own process is what a worker with the fixed seed
    writes, whatever this process's seed; code holding a frozenset is not written here."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import pyc_worker as w;"
        "sys.stdout.buffer.write(w.seedless_pyc(sys.stdin.buffer.read(), 'm.py') or b'NONE')"
    )
    folder = str(Path(engine.__file__).parent)
    for source, expected in (
        (SET_FREE, checked_hash_pyc(SET_FREE, "m.py")),
        (WITH_A_SET, b"NONE"),
    ):
        done = subprocess.run(
            [sys.executable, "-S", "-c", code, folder],
            input=source,
            capture_output=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "LC_ALL": "C"},
        )
        assert done.stdout == expected


def test_portenv_relocate_leaves_no_bytecode_of_its_own(tmp_path: Path) -> None:
    """bin/portenv-relocate runs the engine without -B: loading the worker must not leave a
    .portenv/__pycache__ behind (an update compares the tree with the one it was made for)."""
    make_env(tmp_path, {"lib/conf.py": f"PREFIX = {OLD!r}\n".encode()})
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").symlink_to(sys.executable)
    folder = Path(engine.__file__).parent
    for name in ("relocate.py", "pyc_worker.py"):
        (tmp_path / ".portenv" / name).write_bytes((folder / name).read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [sys.executable, str(tmp_path / ".portenv" / "relocate.py"), "--to", "/opt/e"],
        check=True,
        capture_output=True,
        env=env,
    )
    assert (tmp_path / "lib" / "__pycache__").is_dir(), "the rewritten source was compiled"
    assert not (tmp_path / ".portenv" / "__pycache__").exists()

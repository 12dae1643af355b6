"""The environment's shared-library closure: what is bundled from the host, what is patched.

Tiny ELF files are compiled here with gcc: a stand-in python executable (DT_RPATH
``$ORIGIN/../lib``, as both a conda python and the portable CPython have), extension modules
and a "host" library in a folder outside the environment that LD_LIBRARY_PATH points at.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from portenv.errors import StageError
from portenv.model import StagedPrefix, Subdir
from portenv.stage import make_placeholder
from portenv.stage.bundle import complete_closure, search_path

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

PLACEHOLDER = make_placeholder(64)


def gcc(out: Path, source: str, *flags: str) -> Path:
    """Compile C ``source`` into ``out`` (a shared object unless -pie/-no-shared is wanted)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    c_file = out.with_name(out.name + ".c")
    c_file.write_text(source)
    subprocess.run(["gcc", "-o", str(out), str(c_file), *flags], check=True)
    c_file.unlink()
    return out


def host_library(folder: Path, soname: str, body: str = "int dep(void) { return 1; }") -> Path:
    return gcc(folder / soname, body, "-shared", "-fPIC", f"-Wl,-soname,{soname}")


def environment(root: Path) -> StagedPrefix:
    """An env with bin/python3.12 (DT_RPATH $ORIGIN/../lib) and an empty site-packages."""
    exe = root / "bin" / "python3.12"
    gcc(exe, "int main(void) { return 0; }", "-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN/../lib")
    (root / "lib" / "python3.12" / "site-packages").mkdir(parents=True)
    return StagedPrefix(root, PLACEHOLDER, Subdir("linux-64"), "bin/python3.12")


SITE = "lib/python3.12/site-packages"


def extension(root: Path, name: str, libs: list[str], *flags: str, body: str = "") -> Path:
    """A module in site-packages linked against ``libs`` (``-l:`` names, found via -L flags)."""
    source = body or "int dep(void); int entry(void) { return dep(); }"
    links = [f"-l:{lib}" for lib in libs]
    return gcc(root / SITE / "pkg" / name, source, "-shared", "-fPIC", *flags, *links)


def dynamic(path: Path, tag: str) -> list[str]:
    """The entries of a DT_RPATH/DT_RUNPATH as readelf (binutils) prints them."""
    out = subprocess.run(["readelf", "-d", "-W", str(path)], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if f"({tag})" in line:
            return line.split("[", 1)[1].rstrip("]").split(":")
    return []


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of 'build machine' libraries that the loader of this process would find."""
    folder = tmp_path / "host"
    host_library(folder, "libdep.so.1")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(folder))
    return folder


def test_a_library_from_the_host_is_copied_into_lib(tmp_path: Path, host: Path) -> None:
    staged = environment(tmp_path / "env")
    ext = extension(staged.path, "ext.so", ["libdep.so.1"], f"-L{host}")
    bundle = complete_closure(staged)
    copied = staged.path / "lib" / "libdep.so.1"
    assert copied.is_file() and copied.read_bytes()[:4] == b"\x7fELF"
    assert [(b.name, b.source, b.needed_by) for b in bundle.bundled] == [
        ("libdep.so.1", str(host / "libdep.so.1"), (f"{SITE}/pkg/ext.so",))
    ]
    assert dynamic(copied, "RPATH") == ["$ORIGIN"], "a bundled library finds its siblings"
    assert dynamic(ext, "RPATH") == [] and dynamic(ext, "RUNPATH") == [], (
        "python's DT_RPATH $ORIGIN/../lib reaches lib/ for a module without DT_RUNPATH"
    )
    record = json.loads((staged.path / ".portenv" / "bundled.json").read_text())
    assert record["bundled"][0]["name"] == "libdep.so.1"
    assert record["bundled"][0]["source"] == str(host / "libdep.so.1")


def test_the_dependencies_of_a_bundled_library_come_along(tmp_path: Path, host: Path) -> None:
    host_library(host, "libinner.so.2", "int inner(void) { return 2; }")
    flags = ["-shared", "-fPIC", "-Wl,-soname,libouter.so.1", f"-L{host}", "-l:libinner.so.2"]
    gcc(host / "libouter.so.1", "int inner(void); int dep(void) { return inner(); }", *flags)
    staged = environment(tmp_path / "env")
    extension(staged.path, "ext.so", ["libouter.so.1"], f"-L{host}")
    bundle = complete_closure(staged)
    by_name = {b.name: b for b in bundle.bundled}
    assert set(by_name) == {"libouter.so.1", "libinner.so.2"}
    assert by_name["libinner.so.2"].needed_by == ("lib/libouter.so.1",)


def test_a_runpath_into_the_staging_folder_becomes_origin_relative(
    tmp_path: Path, host: Path
) -> None:
    """What an sdist build leaves (RUNPATH=<staging>/prefix/lib), and a foreign absolute entry."""
    staged = environment(tmp_path / "env")
    inside = staged.path / "lib"
    flags = [f"-L{host}", "-Wl,--enable-new-dtags", f"-Wl,-rpath,/opt/nowhere:{inside}"]
    ext = extension(staged.path, "ext.so", ["libdep.so.1"], *flags)
    assert dynamic(ext, "RUNPATH") == ["/opt/nowhere", str(inside)]
    cached = tmp_path / "package-cache-copy.so"
    os.link(ext, cached)  # as rattler installs files: hard links into its package cache
    before = cached.read_bytes()
    bundle = complete_closure(staged)
    assert cached.read_bytes() == before, "the package cache's file is never written"
    assert dynamic(ext, "RUNPATH") == ["$ORIGIN/../../.."], "kept a DT_RUNPATH, made relative"
    assert f"{SITE}/pkg/ext.so" in bundle.patched
    assert (inside / "libdep.so.1").is_file()


def test_a_runpath_that_cannot_reach_lib_gets_an_entry(tmp_path: Path, host: Path) -> None:
    """A DT_RUNPATH stops the search through python's DT_RPATH: the module needs its own."""
    staged = environment(tmp_path / "env")
    ext = extension(
        staged.path, "ext.so", ["libdep.so.1"], f"-L{host}", "-Wl,--enable-new-dtags",
        "-Wl,-rpath,$ORIGIN/libs",
    )  # fmt: skip
    complete_closure(staged)
    assert dynamic(ext, "RUNPATH") == ["$ORIGIN/libs", "$ORIGIN/../../.."]


def test_a_library_already_in_lib_is_used_not_copied(tmp_path: Path, host: Path) -> None:
    staged = environment(tmp_path / "env")
    own = host_library(staged.path / "lib", "libdep.so.1", "int dep(void) { return 7; }")
    before = own.read_bytes()
    ext = extension(
        staged.path, "ext.so", ["libdep.so.1"], f"-L{host}", "-Wl,--enable-new-dtags",
        "-Wl,-rpath,$ORIGIN",
    )  # fmt: skip
    bundle = complete_closure(staged)
    assert bundle.bundled == ()
    assert own.read_bytes() == before, "the environment's own copy stays"
    assert dynamic(ext, "RUNPATH") == ["$ORIGIN", "$ORIGIN/../../.."]


def test_a_library_the_env_holds_elsewhere_is_reached_not_bundled(
    tmp_path: Path, host: Path
) -> None:
    """torch ships test programs in torch/bin/ with DT_RUNPATH $ORIGIN (and absolute foreign
    entries) that need torch/lib/libc10.so: the env's own copy is reached, nothing refused."""
    staged = environment(tmp_path / "env")
    pkg = staged.path / SITE / "pkg"
    own = host_library(pkg / "lib", "libown.so", "int dep(void) { return 3; }")
    (host / "libown.so").write_bytes(own.read_bytes())  # the build machine's own is not taken
    flags = [f"-L{pkg / 'lib'}", "-l:libown.so", "-Wl,--enable-new-dtags"]
    program = gcc(
        pkg / "bin" / "test_prog", "int dep(void); int main(void) { return dep(); }",
        *flags, "-Wl,-rpath,$ORIGIN:/lib/intel64",
    )  # fmt: skip
    bundle = complete_closure(staged)
    assert bundle.bundled == (), "nothing copied from the build machine"
    assert dynamic(program, "RUNPATH") == ["$ORIGIN", "$ORIGIN/../lib"]
    done = subprocess.run([str(program)], capture_output=True, env={}, check=False)
    assert done.returncode == 3, done.stderr


def test_a_missing_library_is_refused_naming_it_and_its_needer(tmp_path: Path, host: Path) -> None:
    staged = environment(tmp_path / "env")
    extension(staged.path, "ext.so", ["libdep.so.1"], f"-L{host}")
    (host / "libdep.so.1").unlink()
    with pytest.raises(StageError) as caught:
        complete_closure(staged)
    assert f"libdep.so.1 (needed by {SITE}/pkg/ext.so)" in caught.value.message
    assert "--allow-missing-library libdep.so.1" in str(caught.value.hint)
    assert not (staged.path / ".portenv" / "bundled.json").exists()


def test_allowed_missing_libraries_are_left_to_the_target(tmp_path: Path, host: Path) -> None:
    staged = environment(tmp_path / "env")
    extension(staged.path, "ext.so", ["libdep.so.1"], f"-L{host}")
    bundle = complete_closure(staged, allow_missing=["libdep.so.*"])
    assert bundle.bundled == () and not (staged.path / "lib" / "libdep.so.1").exists()
    assert [(x.name, x.reason) for x in bundle.left_to_target] == [("libdep.so.1", "allowed")]
    record = json.loads((staged.path / ".portenv" / "bundled.json").read_text())
    assert record["left_to_target"][0]["needed_by"] == [f"{SITE}/pkg/ext.so"]


def test_driver_libraries_are_never_bundled(tmp_path: Path, host: Path) -> None:
    """libcuda.so.1 must be the target's own, even when this machine has one."""
    host_library(host, "libcuda.so.1")
    staged = environment(tmp_path / "env")
    extension(staged.path, "gpu.so", ["libcuda.so.1"], f"-L{host}")
    bundle = complete_closure(staged)
    assert bundle.bundled == ()
    assert [(x.name, x.reason) for x in bundle.left_to_target] == [("libcuda.so.1", "driver")]


def test_another_platform_takes_nothing_from_this_machine(tmp_path: Path, host: Path) -> None:
    """from_host=False (a cross pack): the host's libdep is not used, the refusal says why."""
    staged = environment(tmp_path / "env")
    extension(staged.path, "ext.so", ["libdep.so.1"], f"-L{host}")
    with pytest.raises(StageError) as caught:
        complete_closure(staged, from_host=False)
    assert "libdep.so.1" in caught.value.message
    assert "another machine" in str(caught.value.hint)
    assert not (staged.path / "lib" / "libdep.so.1").exists()


def test_a_thread_canceller_gets_libgcc_s(tmp_path: Path, host: Path) -> None:
    """glibc dlopens libgcc_s.so.1 for pthread_cancel: it must be in lib/, reachable by python."""
    staged = environment(tmp_path / "env")
    body = "#include <pthread.h>\nint entry(pthread_t t) { return pthread_cancel(t); }\n"
    extension(staged.path, "threads.so", [], "-pthread", body=body)
    bundle = complete_closure(staged)
    assert "libgcc_s.so.1" in {b.name for b in bundle.bundled}
    assert (staged.path / "lib" / "libgcc_s.so.1").is_file()


def test_the_closure_is_complete_when_nothing_is_missing(tmp_path: Path) -> None:
    """An environment that needs only glibc: nothing bundled, nothing patched."""
    staged = environment(tmp_path / "env")
    extension(staged.path, "plain.so", [], body="int entry(void) { return 0; }")
    bundle = complete_closure(staged)
    assert (bundle.bundled, bundle.left_to_target, bundle.patched) == ((), (), ())


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        pytest.param(["$ORIGIN/../lib"], ["$ORIGIN/../lib"], id="relative-kept"),
        pytest.param(["/e/lib"], ["$ORIGIN/../lib"], id="staging-prefix"),
        pytest.param([f"{PLACEHOLDER}/lib"], ["$ORIGIN/../lib"], id="placeholder"),
        pytest.param(["/usr/lib/x86_64-linux-gnu"], [], id="host-dropped"),
        pytest.param(["/e", "/e/"], ["$ORIGIN/.."], id="root-once"),
    ],
)
def test_search_path_rewrites_absolute_entries(entries: list[str], expected: list[str]) -> None:
    assert search_path(entries, Path("/e/bin/tool"), Path("/e"), PLACEHOLDER) == expected


def test_a_complete_environment_is_left_as_it_is(tmp_path: Path, host: Path) -> None:
    """A second run finds everything inside: nothing is copied or patched again."""
    staged = environment(tmp_path / "env")
    extension(
        staged.path, "ext.so", ["libdep.so.1"], f"-L{host}", "-Wl,--enable-new-dtags",
        f"-Wl,-rpath,{staged.path / 'lib'}",
    )  # fmt: skip
    first = complete_closure(staged)
    assert [b.name for b in first.bundled] == ["libdep.so.1"] and first.patched
    (host / "libdep.so.1").unlink()  # the build machine's copy is no longer needed
    second = complete_closure(staged)
    assert (second.bundled, second.patched) == ((), ())

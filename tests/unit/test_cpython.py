"""portenv.stage.cpython: inspect a CPython, resolve its library closure, make a portable copy."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from portenv.errors import InputError, StageError
from portenv.platforms import version_key
from portenv.stage.cpython import (
    DEFAULT_EXCLUDES,
    BaseInterpreter,
    PortableInterpreter,
    inspect_interpreter,
    make_portable,
)
from portenv.stage.cpython_closure import (
    ElfInfo,
    LibraryResolver,
    Needer,
    is_system_library,
    read_elf,
    resolve_closure,
)
from portenv.stage.cpython_inspect import check_supported
from portenv.stage.cpython_patch import origin_rpath
from portenv.stage.cpython_sysconfig import KEEP_ABSOLUTE, prefix_pattern, sysconfigdata_source
from portenv.stage.cpython_tree import copy_interpreter, is_excluded
from tests.support.pyrelocate import distribution_python, installed_pythons

RUNNING = Path(sys.executable)
_FOUND = installed_pythons()
_SYSTEM = distribution_python()
INTERPRETERS = [pytest.param(path, id=minor) for minor, path in _FOUND.items()]
if _SYSTEM is not None:
    INTERPRETERS.append(pytest.param(_SYSTEM, id="system"))
if not INTERPRETERS:
    INTERPRETERS.append(pytest.param(RUNNING, id="running"))
LDD = shutil.which("ldd")
_NO_LD_PATH = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}


def ldd(path: Path) -> dict[str, Path]:
    """What the system's ldd says ``path`` loads (the cross-check for our own resolver)."""
    assert LDD is not None
    out = subprocess.run([LDD, str(path)], capture_output=True, text=True, env=_NO_LD_PATH).stdout
    return {m[1]: Path(m[2]) for m in re.finditer(r"^\s*(\S+) => (/\S+)", out, re.M)}


@pytest.fixture(scope="module")
def portable(tmp_path_factory: pytest.TempPathFactory) -> PortableInterpreter:
    """A portable copy of the interpreter running the tests."""
    base = inspect_interpreter(RUNNING)
    return make_portable(base, tmp_path_factory.mktemp("portable") / "env")


# --------------------------------------------------------------------------- allowlist


@pytest.mark.parametrize(
    ("soname", "system"),
    [
        pytest.param("libc.so.6", True, id="libc"),
        pytest.param("libm.so.6", True, id="libm"),
        pytest.param("libpthread.so.0", True, id="libpthread"),
        pytest.param("libdl.so.2", True, id="libdl"),
        pytest.param("librt.so.1", True, id="librt"),
        pytest.param("libutil.so.1", True, id="libutil"),
        pytest.param("ld-linux-x86-64.so.2", True, id="ld-linux-x86-64"),
        pytest.param("ld-linux-aarch64.so.1", True, id="ld-linux-aarch64"),
        pytest.param("libresolv.so.2", True, id="libresolv-glibc-private"),
        pytest.param("libnss_files.so.2", True, id="libnss"),
        pytest.param("libcrypt.so.1", False, id="libcrypt-is-libxcrypt"),
        pytest.param("libgcc_s.so.1", False, id="libgcc_s"),
        pytest.param("libstdc++.so.6", False, id="libstdc++"),
        pytest.param("libssl.so.3", False, id="libssl"),
        pytest.param("libnsl.so.2", False, id="libnsl2-is-libtirpc-based"),
        pytest.param("libpython3.12.so.1.0", False, id="libpython"),
    ],
)
def test_allowlist(soname: str, system: bool) -> None:
    assert is_system_library(soname) is system


# --------------------------------------------------------------------------- resolver


def fake_info(**changes: Any) -> ElfInfo:
    """The ELF facts of a needer like the running interpreter, with ``changes``."""
    real = read_elf(RUNNING.resolve())
    assert real is not None
    return replace(real, **changes)


def plant(folder: Path, soname: str, *, machine: int | None = None) -> Path:
    """An ELF file named ``soname`` in ``folder`` (a copy of the running python binary)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = bytearray(RUNNING.resolve().read_bytes())
    if machine is not None:
        data[18:20] = machine.to_bytes(2, "little")  # e_machine
    (folder / soname).write_bytes(bytes(data))
    return folder / soname


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    """One folder per place the loader looks, each holding its own libfoo.so.1."""
    names = ("rpath", "loader", "env", "runpath", "cache", "default", "origin")
    found = {name: tmp_path / name for name in names}
    for folder in found.values():
        plant(folder, "libfoo.so.1")
    return found


def resolver(dirs: dict[str, Path]) -> LibraryResolver:
    cache = [("libfoo.so.1", dirs["cache"] / "libfoo.so.1")]
    return LibraryResolver(env_dirs=(str(dirs["env"]),), cache=cache, defaults=[dirs["default"]])


def test_rpath_beats_everything(dirs: dict[str, Path]) -> None:
    needer = Needer(fake_info(rpath=(str(dirs["rpath"]),), runpath=()), dirs["origin"], "x")
    assert resolver(dirs).resolve("libfoo.so.1", needer) == dirs["rpath"] / "libfoo.so.1"


def test_loaders_rpath_is_searched_too(dirs: dict[str, Path]) -> None:
    exe = Needer(fake_info(rpath=(str(dirs["loader"]),), runpath=()), dirs["origin"], "exe")
    needer = Needer(fake_info(rpath=(), runpath=()), dirs["origin"], "mod", (exe,))
    assert resolver(dirs).resolve("libfoo.so.1", needer) == dirs["loader"] / "libfoo.so.1"


def test_runpath_disables_every_rpath(dirs: dict[str, Path]) -> None:
    """With a DT_RUNPATH, LD_LIBRARY_PATH comes first and no DT_RPATH is looked at."""
    exe = Needer(fake_info(rpath=(str(dirs["loader"]),), runpath=()), dirs["origin"], "exe")
    info = fake_info(rpath=(str(dirs["rpath"]),), runpath=(str(dirs["runpath"]),))
    needer = Needer(info, dirs["origin"], "mod", (exe,))
    assert resolver(dirs).resolve("libfoo.so.1", needer) == dirs["env"] / "libfoo.so.1"
    alone = replace(resolver(dirs), env_dirs=())
    assert alone.resolve("libfoo.so.1", needer) == dirs["runpath"] / "libfoo.so.1"


def test_cache_then_default_dirs(dirs: dict[str, Path]) -> None:
    needer = Needer(fake_info(rpath=(), runpath=()), dirs["origin"], "x")
    plain = replace(resolver(dirs), env_dirs=())
    assert plain.resolve("libfoo.so.1", needer) == dirs["cache"] / "libfoo.so.1"
    assert replace(plain, cache=[]).resolve("libfoo.so.1", needer) == (
        dirs["default"] / "libfoo.so.1"
    )
    assert replace(plain, cache=[], defaults=[]).resolve("libfoo.so.1", needer) is None


def test_origin_is_expanded(dirs: dict[str, Path]) -> None:
    needer = Needer(fake_info(rpath=("$ORIGIN/../origin",), runpath=()), dirs["rpath"], "x")
    found = LibraryResolver(cache=[], defaults=[]).resolve("libfoo.so.1", needer)
    assert found is not None and found.resolve() == dirs["origin"] / "libfoo.so.1"


def test_other_machine_is_skipped(tmp_path: Path, dirs: dict[str, Path]) -> None:
    """ld.so passes over a library of another architecture, and so do we."""
    plant(
        tmp_path / "foreign", "libfoo.so.1", machine=183 if os.uname().machine != "aarch64" else 62
    )
    rpath = (str(tmp_path / "foreign"), str(dirs["rpath"]))
    needer = Needer(fake_info(rpath=rpath, runpath=()), dirs["origin"], "x")
    assert resolver(dirs).resolve("libfoo.so.1", needer) == dirs["rpath"] / "libfoo.so.1"


def test_missing_libraries_are_listed_once(dirs: dict[str, Path]) -> None:
    needed = ("libfoo.so.1", "libnothere.so.9", "libalsogone.so.2", "libc.so.6")
    needer = Needer(fake_info(needed=needed, rpath=(), runpath=()), dirs["origin"], "bin/x")
    with pytest.raises(StageError) as caught:
        resolve_closure([needer, needer], resolver(dirs))
    assert str(caught.value) == (
        "shared libraries not found: libalsogone.so.2 (needed by bin/x), "
        "libnothere.so.9 (needed by bin/x)"
    )
    assert caught.value.hint is not None and "exclude" in caught.value.hint
    plain = replace(resolver(dirs), env_dirs=())
    optional = resolve_closure([needer], plain, ["libnothere.so.9", "libalsogone.so.2"])
    assert optional.found["libfoo.so.1"] == (dirs["cache"] / "libfoo.so.1", "bin/x")
    assert "libc.so.6" in optional.system


@pytest.mark.skipif(LDD is None, reason="no ldd on this machine")
@pytest.mark.parametrize("python", INTERPRETERS)
def test_closure_agrees_with_ldd(python: Path) -> None:
    """On the real interpreters, our loader rules find exactly what ldd finds."""
    base = inspect_interpreter(python)
    exe_info = read_elf(base.executable)
    assert exe_info is not None
    exe = Needer(exe_info, base.executable.parent, "exe")
    modules = sorted((base.platstdlib / "lib-dynload").glob("*.so"))
    roots = [exe]
    for module in modules:
        info = read_elf(module)
        assert info is not None
        roots.append(Needer(info, module.parent, module.name, (exe,)))
    closure = resolve_closure(roots, LibraryResolver())
    expected: dict[str, Path] = {}
    for path in (base.executable, *modules):
        expected.update(ldd(path))
    bundled = {k: v for k, v in expected.items() if not is_system_library(k)}
    glibc_private = {k for k in bundled if k in closure.system}
    assert set(closure.found) == set(bundled) - glibc_private
    for soname, (path, _needed_by) in closure.found.items():
        assert path.resolve() == expected[soname].resolve(), soname


# --------------------------------------------------------------------------- inspect


def query(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """What the query prints for a python at ``tmp_path``, with ``changes``."""
    info: dict[str, Any] = {
        "implementation": "CPython",
        "version": [3, 12, 1],
        "platform": "linux",
        "executable": str(RUNNING),
        "base_executable": None,
        "base_prefix": str(tmp_path),
        "build_prefix": str(tmp_path),
        "stdlib": str(tmp_path / "lib/python3.12"),
        "platstdlib": str(tmp_path / "lib/python3.12"),
        "vars": {},
    }
    info.update(changes)
    return info


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"implementation": "PyPy", "version": [3, 10, 14]},
            "not a CPython interpreter: {py} is PyPy 3.10.14",
            id="pypy",
        ),
        pytest.param(
            {"version": [3, 7, 16]},
            "python too old: {py} is CPython 3.7.16, portenv needs CPython 3.8 or newer",
            id="too-old",
        ),
        pytest.param(
            {"version": [2, 7, 18], "platform": "linux2"},
            "python too old: {py} is CPython 2.7.18, portenv needs CPython 3.8 or newer",
            id="python2",
        ),
        pytest.param(
            {"platform": "darwin"}, "not a Linux interpreter: {py} is built for darwin", id="macos"
        ),
        pytest.param(
            {"platform": "win32"}, "not a Linux interpreter: {py} is built for win32", id="windows"
        ),
    ],
)
def test_refusals(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    python = tmp_path / "bin/python3"
    with pytest.raises(InputError) as caught:
        check_supported(query(tmp_path, **changes), python, RUNNING.resolve())
    assert str(caught.value) == message.format(py=python, prefix=tmp_path)
    assert caught.value.hint


def test_refuses_conda_python(tmp_path: Path) -> None:
    (tmp_path / "conda-meta").mkdir()
    with pytest.raises(InputError, match=r"^conda python not supported") as caught:
        check_supported(query(tmp_path), tmp_path / "bin/python", RUNNING.resolve())
    assert caught.value.hint == "pack it as a pixi project instead"


@pytest.mark.parametrize("marker", ["build-prefix", "PYTHON.json"])
def test_accepts_python_build_standalone(
    tmp_path: Path, portable: PortableInterpreter, marker: str
) -> None:
    """PBS (and uv's pythons) are relocatable already: $ORIGIN rpaths are no refusal then."""
    info = query(tmp_path)
    if marker == "PYTHON.json":
        (tmp_path / "PYTHON.json").write_text("{}")
    else:
        info["build_prefix"] = "/install"
    check_supported(info, tmp_path / "bin/python", portable.executable)


def test_refuses_an_already_relocated_copy(tmp_path: Path, portable: PortableInterpreter) -> None:
    """$ORIGIN rpaths without being PBS: a portable copy (a portenv env), not an installation."""
    with pytest.raises(InputError, match=r"^already relocated python not supported: ") as caught:
        check_supported(query(tmp_path), tmp_path / "bin/python", portable.executable)
    assert caught.value.hint and "PBS" in caught.value.hint


def test_refuses_non_elf(tmp_path: Path) -> None:
    script = tmp_path / "python3"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(InputError, match=f"^not a Linux ELF executable: {re.escape(str(script))}"):
        check_supported(query(tmp_path), script, script)


def test_refuses_static_executable(tmp_path: Path) -> None:
    static = next(
        (
            Path(p)
            for p in (shutil.which("ldconfig"), shutil.which("busybox"))
            if p and (info := read_elf(Path(p))) is not None and info.interpreter is None
        ),
        None,
    )
    if static is None:
        pytest.skip("no statically linked executable on this machine")
    with pytest.raises(InputError, match=r"^statically linked python not supported"):
        check_supported(query(tmp_path), static, static)


@pytest.mark.parametrize(
    ("argv0", "message"),
    [
        pytest.param("missing", "python interpreter not found: {path}", id="missing"),
        pytest.param(
            "true", "not a python interpreter: {path} did not answer the query", id="true"
        ),
        pytest.param("false", "cannot run python interpreter {path}: exit status 1", id="false"),
    ],
)
def test_inspect_refuses_what_is_no_python(tmp_path: Path, argv0: str, message: str) -> None:
    path = Path(shutil.which(argv0) or tmp_path / argv0)
    with pytest.raises(InputError) as caught:
        inspect_interpreter(path)
    assert str(caught.value) == message.format(path=path)


def test_a_venv_resolves_to_its_base(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")], check=True)
    base = inspect_interpreter(tmp_path / "v/bin/python")
    assert base.prefix == Path(sys.base_prefix)
    assert base.executable.is_relative_to(Path(sys.base_prefix).resolve())
    assert base == inspect_interpreter(RUNNING)


@pytest.mark.parametrize("python", INTERPRETERS)
def test_inspect_real_interpreters(python: Path) -> None:
    base = inspect_interpreter(python)
    assert base.executable.is_file()
    assert base.stdlib.is_relative_to(base.prefix) and (base.stdlib / "os.py").is_file()
    assert base.version[:2] >= (3, 8)


# --------------------------------------------------------------------------- tree copy


@pytest.mark.parametrize(
    ("relative", "excluded"),
    [
        pytest.param("test", True, id="test-suite"),
        pytest.param("ctypes/test", True, id="package-tests"),
        pytest.param("lib2to3/tests", True, id="lib2to3-tests"),
        pytest.param("tkinter", True, id="tkinter"),
        pytest.param("lib-dynload/_tkinter.cpython-312-x86_64-linux-gnu.so", True, id="_tkinter"),
        pytest.param("__pycache__/turtle.cpython-312.pyc", True, id="pyc-of-excluded"),
        pytest.param("__pycache__/os.cpython-312.opt-1.pyc", True, id="optimized-pyc"),
        pytest.param("config-3.12-x86_64-linux-gnu/libpython3.12.a", True, id="static-lib"),
        pytest.param("sitecustomize.pth", True, id="pth"),
        pytest.param("EXTERNALLY-MANAGED", True, id="pep668-marker"),
        pytest.param("__pycache__/os.cpython-312.pyc", False, id="pyc"),
        pytest.param("ensurepip/__init__.py", False, id="ensurepip"),
        pytest.param("unittest/mock.py", False, id="unittest"),
        pytest.param("lib-dynload/_ssl.cpython-312-x86_64-linux-gnu.so", False, id="_ssl"),
    ],
)
def test_default_excludes(relative: str, excluded: bool) -> None:
    assert is_excluded(relative, DEFAULT_EXCLUDES) is excluded


def fake_base(root: Path) -> BaseInterpreter:
    """A tiny installation prefix: only copy_interpreter looks at it."""
    stdlib = root / "lib/python3.12"
    files = [
        "bin/python3.12",
        "bin/python3.12-config",
        "include/python3.12/Python.h",
        "lib/python3.12/os.py",
        "lib/python3.12/__pycache__/os.cpython-312.pyc",
        "lib/python3.12/__pycache__/os.cpython-312.opt-2.pyc",
        "lib/python3.12/__pycache__/turtle.cpython-312.pyc",
        "lib/python3.12/turtle.py",
        "lib/python3.12/extra.pth",
        "lib/python3.12/EXTERNALLY-MANAGED",
        "lib/python3.12/ensurepip/__init__.py",
        "lib/python3.12/ctypes/__init__.py",
        "lib/python3.12/ctypes/test/test_x.py",
        "lib/python3.12/test/test_os.py",
        "lib/python3.12/tkinter/__init__.py",
        "lib/python3.12/lib-dynload/_ssl.cpython-312-x86_64-linux-gnu.so",
        "lib/python3.12/lib-dynload/_tkinter.cpython-312-x86_64-linux-gnu.so",
        "lib/python3.12/config-3.12-x86_64-linux-gnu/Makefile",
        "lib/python3.12/config-3.12-x86_64-linux-gnu/libpython3.12.a",
        "lib/python3.12/site-packages/evil.pth",
        "lib/python3.12/site-packages/pip/__init__.py",
        "lib/pkgconfig/python-3.12.pc",
        "lib/pkgconfig/python-3.12-embed.pc",
    ]
    for relative in files:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(relative)
    (stdlib / "config-3.12-x86_64-linux-gnu/libpython3.12.so").symlink_to("/nowhere/lib.so")
    return BaseInterpreter(
        executable=root / "bin/python3.12",
        prefix=root,
        version=(3, 12, 1),
        ldlibrary="libpython3.12.so",
        build_prefix=str(root),
        abiflags="",
        stdlib=stdlib,
        platstdlib=stdlib,
        includes=(root / "include/python3.12",),
        libdir=root / "lib",
    )


def tree(root: Path) -> set[str]:
    return {
        str(p.relative_to(root)) + ("/" if p.is_dir() and not p.is_symlink() else "")
        for p in root.rglob("*")
    }


def test_copy_leaves_out_site_packages_pth_and_tests(tmp_path: Path) -> None:
    base = fake_base(tmp_path / "base")
    copied = copy_interpreter(base, tmp_path / "dest", DEFAULT_EXCLUDES, headers=True)
    stdlib = "lib/python3.12/"
    assert tree(tmp_path / "dest") == {
        "bin/",
        "bin/python3.12",
        "bin/python3",
        "bin/python",
        "bin/python3.12-config",
        "bin/python3-config",
        "include/",
        "include/python3.12/",
        "include/python3.12/Python.h",
        "lib/",
        "lib/pkgconfig/",
        "lib/pkgconfig/python-3.12.pc",
        "lib/pkgconfig/python-3.12-embed.pc",
        stdlib,
        stdlib + "os.py",
        stdlib + "__pycache__/",
        stdlib + "__pycache__/os.cpython-312.pyc",
        stdlib + "ensurepip/",
        stdlib + "ensurepip/__init__.py",
        stdlib + "ctypes/",
        stdlib + "ctypes/__init__.py",
        stdlib + "lib-dynload/",
        stdlib + "lib-dynload/_ssl.cpython-312-x86_64-linux-gnu.so",
        stdlib + "config-3.12-x86_64-linux-gnu/",
        stdlib + "config-3.12-x86_64-linux-gnu/Makefile",
        stdlib + "site-packages/",
    }
    assert copied[tmp_path / "dest/bin/python3.12"] == base.executable
    assert os.readlink(tmp_path / "dest/bin/python3") == "python3.12"


def test_copy_without_headers(tmp_path: Path) -> None:
    base = fake_base(tmp_path / "base")
    copy_interpreter(base, tmp_path / "dest", (), headers=False)
    found = tree(tmp_path / "dest")
    assert not {
        p for p in found if p.startswith(("include", "lib/pkgconfig")) or "config" in p[:12]
    }
    assert "lib/python3.12/test/test_os.py" in found  # no excludes asked for
    assert "lib/python3.12/site-packages/evil.pth" not in found


def test_copy_of_a_real_install_with_planted_pth(tmp_path: Path) -> None:
    """A copy of a base install, with site-packages content and .pth files planted in it."""
    base = inspect_interpreter(RUNNING)
    skip = {"test", "__pycache__", "idlelib", "tkinter", "site-packages", "pkgconfig"}

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if n in skip or n.endswith(".a") or n.startswith("pydoc_data")}

    copy = tmp_path / "copy"
    shutil.copytree(base.prefix, copy, symlinks=True, ignore=ignore)
    stdlib = copy / base.stdlib.relative_to(base.prefix)
    (stdlib / "site-packages/planted").mkdir(parents=True)
    (stdlib / "site-packages/planted/__init__.py").write_text("")
    (stdlib / "site-packages/planted.pth").write_text("import planted\n")
    (stdlib / "distutils-precedence.pth").write_text("import os\n")
    copied_base = inspect_interpreter(copy / "bin" / f"python{base.short_version}")
    assert copied_base.prefix == copy
    assert copied_base.build_prefix == base.build_prefix
    portable = make_portable(copied_base, tmp_path / "env")
    assert not list(portable.prefix.rglob("*.pth"))
    assert portable.site_packages.is_dir()
    assert not list(portable.site_packages.iterdir())
    assert not list(portable.prefix.rglob("EXTERNALLY-MANAGED"))
    check = "import importlib.util as u, sys; print(u.find_spec('planted'), sys.prefix)"
    done = subprocess.run(
        [str(portable.executable), "-c", check], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["None", str(portable.prefix)]


# --------------------------------------------------------------------------- make_portable


def test_portable_rpaths_are_origin_relative(portable: PortableInterpreter) -> None:
    version = "{}.{}".format(*portable.version)
    expected = {
        Path("bin") / f"python{version}": "$ORIGIN/../lib",
        Path("lib") / f"python{version}" / "lib-dynload": "$ORIGIN/../..",
        Path("lib"): "$ORIGIN",
    }
    checked = 0
    for path in sorted(portable.prefix.rglob("*")):
        info = read_elf(path) if path.is_file() and not path.is_symlink() else None
        if info is None or not info.dynamic or not (info.rpath or info.runpath):
            continue
        relative = path.relative_to(portable.prefix)
        wanted = expected.get(relative, expected.get(relative.parent))
        assert (info.rpath, info.runpath) == ((wanted,), ()), relative
        checked += 1
    assert checked > len(portable.bundled)


@pytest.mark.skipif(LDD is None, reason="no ldd on this machine")
def test_portable_loads_only_its_own_libraries(portable: PortableInterpreter) -> None:
    """ldd agrees: everything but glibc resolves inside the copy."""
    modules = sorted(portable.prefix.glob("lib/python*/lib-dynload/*.so"))
    for path in (portable.executable, *modules):
        for soname, found in ldd(path).items():
            if not is_system_library(soname):
                assert found.resolve().is_relative_to(portable.prefix), (path, soname)


def test_portable_bundle_and_floor(portable: PortableInterpreter) -> None:
    names = {b.soname for b in portable.bundled}
    assert all((portable.prefix / "lib" / n).is_file() for n in names)
    assert not any(n.startswith("libpython") or is_system_library(n) for n in names)
    assert "libc.so.6" in portable.system_libraries
    if LibraryResolver().resolve("libgcc_s.so.1", Needer(fake_info(), RUNNING, "x")):
        gcc = next(b for b in portable.bundled if b.soname == "libgcc_s.so.1")
        assert gcc.needed_by == "libc.so.6 (dlopen)"
    assert portable.glibc_floor is not None and portable.floor_file is not None
    assert version_key(portable.glibc_floor) >= (2, 17)
    assert (portable.prefix / portable.floor_file).is_file()
    base = inspect_interpreter(RUNNING)
    if base.ldlibrary and base.ldlibrary.endswith(".so"):
        assert portable.libpython is not None and portable.libpython.is_file()
        assert (portable.prefix / "lib" / base.ldlibrary).is_symlink()


SYSCONFIG_DUMP = "import json, sysconfig; print(json.dumps(sysconfig.get_config_vars()))"


def test_moved_copy_reports_its_new_prefix(portable: PortableInterpreter, tmp_path: Path) -> None:
    """sysconfig, pythonX.Y-config and pkg-config files follow the copy, even with a space."""
    moved = tmp_path / "moved here" / "env"
    shutil.copytree(portable.prefix, moved, symlinks=True)
    base = inspect_interpreter(RUNNING)
    python = moved / "bin" / portable.executable.name
    done = subprocess.run([str(python), "-c", SYSCONFIG_DUMP], capture_output=True, text=True)
    variables: dict[str, Any] = json.loads(done.stdout)
    short = base.short_version
    assert variables["LIBDIR"] == str(moved / "lib")
    assert variables["INCLUDEPY"] == str(moved / "include" / f"python{short}")
    assert variables["BINDIR"] == str(moved / "bin")
    assert variables["LIBPL"].startswith(str(moved / "lib" / f"python{short}" / "config-"))
    for key, value in variables.items():
        if isinstance(value, str) and key not in KEEP_ABSOLUTE:
            assert not prefix_pattern(base.build_prefix).search(value), key
            assert str(portable.prefix) not in value, key
    config = subprocess.run(
        [str(moved / "bin/python3-config"), "--prefix", "--includes", "--ldflags"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert config[0] == str(moved)
    assert config[1].split(" -I")[0] == f"-I{moved}/include/python{short}"
    assert base.build_prefix not in "\n".join(config)
    pc = (moved / "lib/pkgconfig" / f"python-{short}.pc").read_text()
    assert "prefix=${pcfiledir}/../.." in pc and base.build_prefix not in pc


def test_make_portable_refuses_a_full_destination(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(StageError, match=r"^destination for the portable python is not empty"):
        make_portable(inspect_interpreter(RUNNING), tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_make_portable_rolls_back(tmp_path: Path) -> None:
    base = replace(inspect_interpreter(RUNNING), stdlib=tmp_path / "elsewhere")
    with pytest.raises(StageError, match=r"^python's standard library is outside its prefix"):
        make_portable(base, tmp_path / "env")
    assert not (tmp_path / "env").exists()


# --------------------------------------------------------------------------- sysconfig


@pytest.mark.parametrize(
    ("prefix", "text", "found"),
    [
        pytest.param("/opt/py", "/opt/py", True, id="whole"),
        pytest.param("/opt/py", "/opt/py/lib", True, id="parent"),
        pytest.param("/opt/py", "-I/opt/py/include", True, id="-I"),
        pytest.param("/opt/py", "-L/opt/py/lib", True, id="-L"),
        pytest.param("/opt/py", "-Wl,-rpath,/opt/py/lib", True, id="rpath"),
        pytest.param("/opt/py", "'--prefix=/opt/py'", True, id="configure-arg"),
        pytest.param("/opt/py", "/opt/py3/lib", False, id="longer-name"),
        pytest.param("/p/3.12.1", "/p/3.12.10/lib", False, id="longer-version"),
        pytest.param("/usr", "/build/python/usr/include", False, id="inside-another-path"),
        pytest.param("/usr", "/usr/include:/usr/lib", True, id="list"),
    ],
)
def test_prefix_pattern(prefix: str, text: str, found: bool) -> None:
    assert bool(prefix_pattern(prefix).search(text)) is found


def test_sysconfigdata_follows_base_prefix() -> None:
    variables = {
        "LIBDIR": "/old/lib",
        "LDFLAGS": "-L/old/lib -Wl,-rpath,/old/lib",
        "TZPATH": "/old/share/zoneinfo:/usr/share/zoneinfo",
        "CONFIG_ARGS": "'--prefix=/old'",
        "SIZEOF_INT": 4,
        "CC": "gcc",
    }
    namespace: dict[str, Any] = {}
    exec(sysconfigdata_source(variables, "/old"), namespace)
    here = sys.base_prefix
    assert namespace["build_time_vars"] == {
        "LIBDIR": f"{here}/lib",
        "LDFLAGS": f"-L{here}/lib -Wl,-rpath,{here}/lib",
        "TZPATH": "/old/share/zoneinfo:/usr/share/zoneinfo",
        "CONFIG_ARGS": "'--prefix=/old'",
        "SIZEOF_INT": 4,
        "CC": "gcc",
    }
    assert not {"_sys", "_prefix"} & set(namespace)


@pytest.mark.parametrize(
    ("file", "rpath"),
    [
        pytest.param("/e/bin/python3.12", "$ORIGIN/../lib", id="bin"),
        pytest.param("/e/lib/libssl.so.3", "$ORIGIN", id="lib"),
        pytest.param("/e/lib/python3.12/lib-dynload/_ssl.so", "$ORIGIN/../..", id="lib-dynload"),
    ],
)
def test_origin_rpath(file: str, rpath: str) -> None:
    assert origin_rpath(Path(file), Path("/e/lib")) == rpath

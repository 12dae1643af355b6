"""A portable copy of this machine's own CPython builds runs on bare targets: moved, in a venv.

The copies are made from the pyenv builds (3.12, 3.13, 3.8 when installed) and the operating
system's python3, then run in the rootfs fixtures with no network, bound at /work/env.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from portenv.platforms import version_key
from portenv.stage.cpython import (
    BaseInterpreter,
    PortableInterpreter,
    inspect_interpreter,
    make_portable,
)
from tests.support.pyrelocate import distribution_python, installed_pythons
from tests.support.rootfs import RootfsResult, run_in_rootfs

pytestmark = pytest.mark.e2e

WANTED = ("3.12", "3.13", "3.8")
_FOUND = installed_pythons(WANTED)
_SYSTEM = distribution_python()
CASES = [pytest.param(minor, id=minor) for minor in WANTED if minor in _FOUND]
if _SYSTEM is not None:
    CASES.append(pytest.param("system", id="system"))
INSIDE = "/work"
IMPORTS = "ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, readline, decimal, json, hashlib, curses"

CHECK = rf"""
import os, sys, sysconfig
import {IMPORTS}
env, host_prefix = sys.argv[1], sys.argv[2]
glibc = ("libc.so", "libm.so", "ld-linux", "libpthread.so", "libdl.so", "librt.so", "libutil.so",
         "libresolv.so")
libs = set()
for line in open("/proc/self/maps"):
    fields = line.split(None, 5)
    if len(fields) == 6 and ".so" in fields[5]:
        libs.add(fields[5].strip())
outside = sorted(p for p in libs if not p.startswith(env + "/")
                 and not os.path.basename(p).startswith(glibc))
assert not outside, outside
assert os.readlink("/proc/self/exe").startswith(env + "/bin/python"), os.readlink("/proc/self/exe")
assert sys.prefix == sys.base_prefix == env, (sys.prefix, sys.base_prefix)
assert sysconfig.get_config_var("BINDIR") == env + "/bin"
libpython = [p for p in libs if "/libpython3" in p]
assert all(p.startswith(env + "/lib/") for p in libpython), libpython
if host_prefix != "/usr":
    assert not os.path.exists(host_prefix), "the host's interpreter is visible"
print("ok", len(libs), "libraries,", len(libpython), "libpython")
"""

MOVE_AND_VENV = rf"""
set -e
mkdir -p "/tmp/moved dir"
cp -a {INSIDE}/env "/tmp/moved dir/env"
M="/tmp/moved dir/env"
"$M/bin/python3" {INSIDE}/check.py "$M" "$2"
test "$("$M/bin/python3-config" --prefix)" = "$M"
"$M/bin/python3" -m venv /tmp/v
/tmp/v/bin/python -c 'import sys, ssl; assert sys.base_prefix == sys.argv[1], sys.base_prefix' "$M"
/tmp/v/bin/python -m pip install -q --no-index --disable-pip-version-check \
    {INSIDE}/hello_pe-1.0-py3-none-any.whl
/tmp/v/bin/python -c 'import hello_pe; print(hello_pe.hi(), hello_pe.__file__)'
"""

PTHREAD_EXIT = r"""
import ctypes, os, threading, time
threading.Thread(target=lambda: ctypes.CDLL(None).pthread_exit(None), daemon=True).start()
time.sleep(0.5)
print(sorted({l.split()[-1] for l in open("/proc/self/maps") if "libgcc_s" in l}), flush=True)
os._exit(0)
"""


@dataclass(frozen=True)
class Case:
    """One portable copy, in a folder that is bound at /work inside the rootfs."""

    base: BaseInterpreter
    portable: PortableInterpreter
    folder: Path

    @property
    def python(self) -> str:
        return f"{INSIDE}/env/bin/{self.portable.executable.name}"


def write_wheel(folder: Path) -> Path:
    """A pure-Python wheel made by hand: pip installs it offline into a venv of the copy."""
    files = {
        "hello_pe/__init__.py": b"def hi():\n    return 'hi from hello_pe'\n",
        "hello_pe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: hello-pe\nVersion: 1.0\n",
        "hello_pe-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: portenv-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("hello_pe-1.0.dist-info/RECORD,,")
    wheel = folder / "hello_pe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("hello_pe-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.fixture(scope="module", params=CASES)
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    """A portable copy of one interpreter, with the check script and a wheel beside it."""
    name: str = request.param
    python = _FOUND.get(name, _SYSTEM)
    assert python is not None
    base = inspect_interpreter(python)
    folder = tmp_path_factory.mktemp(f"portable-{name}")
    portable = make_portable(base, folder / "env")
    (folder / "check.py").write_text(CHECK)
    write_wheel(folder)
    return Case(base, portable, folder)


def run(root: Path, case: Case, argv: list[str]) -> RootfsResult:
    return run_in_rootfs(root, argv, binds=[(case.folder, INSIDE)], timeout=600)


def ok(result: RootfsResult) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("target", ["busybox_root", "trixie_root"])
def test_runs_on_bare_target(case: Case, target: str, request: pytest.FixtureRequest) -> None:
    """Every extension imports, and nothing but glibc is loaded from outside the copy."""
    root: Path = request.getfixturevalue(target)
    argv = [case.python, f"{INSIDE}/check.py", f"{INSIDE}/env", str(case.base.prefix)]
    assert ok(run(root, case, argv)).startswith("ok ")


def test_moved_copy_and_its_venv(case: Case, busybox_root: Path) -> None:
    """Moved (into a path with a space), then `python -m venv` + offline `pip install`."""
    argv = ["sh", "-c", MOVE_AND_VENV, "sh", str(case.base.prefix)]
    out = ok(run(busybox_root, case, argv))
    assert "hi from hello_pe /tmp/v/lib/python" in out


def test_pthread_exit_finds_the_bundled_libgcc_s(case: Case, busybox_root: Path) -> None:
    """glibc dlopens libgcc_s.so.1 to unwind a thread: it finds the copy's, via DT_RPATH."""
    if not any(b.soname == "libgcc_s.so.1" for b in case.portable.bundled):
        pytest.skip("this machine has no libgcc_s.so.1 to bundle")
    out = ok(run(busybox_root, case, [case.python, "-c", PTHREAD_EXIT]))
    assert out.strip() == f"['{INSIDE}/env/lib/libgcc_s.so.1']"


def test_glibc_floor_predicts_bullseye(case: Case, bullseye_root: Path) -> None:
    """bullseye has glibc 2.31: the copy runs there exactly when its floor allows it."""
    floor = case.portable.glibc_floor
    assert floor is not None
    result = run(bullseye_root, case, [case.python, "-c", "import ssl"])
    if version_key(floor) > (2, 31):
        assert result.returncode != 0
        assert "version `GLIBC_2." in result.stderr
    else:
        ok(result)


def test_this_machines_builds_need_more_than_bullseye(case: Case) -> None:
    """The lead's unpacker refuses bullseye for these copies because of this floor."""
    assert case.portable.glibc_floor is not None
    assert version_key(case.portable.glibc_floor) > (2, 31), case.portable.floor_file

"""Plain archives (`pack --format tar.gz|zip`) extracted by ordinary tools, then run at once.

No unpacker and no fixer step: busybox tar and unzip inside a bare glibc + busybox rootfs (no
Python, no network), GNU `tar --no-same-owner` and Python's zipfile (with the modes applied,
as permission-aware extractors do) on the host, each to two different paths. In every copy the
env's python, a console script and `. bin/activate` work, no file names the placeholder, and
the bytecode is valid checked-hash bytecode of the very sources beside it.
"""

from __future__ import annotations

import shlex
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.conftest import portenv
from tests.support.channel import write_project
from tests.support.pypilock import make_wheel
from tests.support.pyrelocate import installed_pythons
from tests.support.rootfs import run_in_rootfs

pytestmark = pytest.mark.e2e

TINY = "import sys\ndef main():\n    print('tiny from', sys.prefix)\n"
PYC_CHECK = r"""
import importlib.util, os, sys
env = os.path.realpath(sys.argv[1])
checked = 0
for folder, _dirs, files in os.walk(os.path.join(env, "lib")):
    for name in files:
        if not name.endswith(".py") or "/test" in folder:
            continue
        source = os.path.join(folder, name)
        pyc = importlib.util.cache_from_source(source)
        if not os.path.exists(pyc):
            continue
        with open(pyc, "rb") as stream:
            head = stream.read(16)
        with open(source, "rb") as stream:
            digest = importlib.util.source_hash(stream.read())
        assert head[:4] == importlib.util.MAGIC_NUMBER, pyc
        assert int.from_bytes(head[4:8], "little") == 3, f"not checked-hash: {pyc}"
        assert head[8:16] == digest, f"stale: {pyc}"
        checked += 1
assert checked > 500, checked
print("pyc ok")
"""
CHECKS = r"""
set -e
E=$1
"$E/bin/python" -c 'import os, sys, ssl, json; print("prefix", os.path.realpath(sys.prefix))'
"$E/bin/tiny"
"$E/bin/pip" --version
"$E/bin/python" /dist/pyc_check.py "$E"
if grep -rl portenv_placehold "$E"; then echo "placeholder left"; exit 1; fi
(
    . "$E/bin/activate"
    python -c 'import sys; print("activated", sys.prefix)'
    tiny
)
echo "links in $E: $(find "$E" -type l | wc -l)"
"""


@pytest.fixture(scope="module")
def plain_archives(package_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """env.tar.gz, env-deref.tar.gz and env.zip of CPython 3.12 + pip + a tiny console script,
    packed offline (the wheel is a local file)."""
    python = installed_pythons(["3.12"]).get("3.12")
    if python is None:
        pytest.fail("CPython 3.12 not found (pyenv or PATH), the test needs it")
    dist = tmp_path_factory.mktemp("plain")
    wheel = make_wheel(
        dist, "tiny", "1.0", files={"tiny.py": TINY}, console_scripts={"tiny": "tiny:main"}
    )
    (dist / "requirements.txt").write_text(f"{wheel}\n")
    (dist / "checks.sh").write_text(CHECKS)
    (dist / "pyc_check.py").write_text(PYC_CHECK)
    common: list[str | Path] = [
        "--python",
        python,
        "-r",
        dist / "requirements.txt",
        "--use-cache",
        package_cache,
    ]
    portenv("pack", *common, "--format", "tar.gz", "-o", dist / "env.tar.gz", "--sbom")
    portenv("pack", *common, "--format", "tar.gz", "--dereference", "-o", dist / "deref.tar.gz")
    portenv("pack", *common, "--format", "zip", "-o", dist / "env.zip")
    return dist


def assert_ran(out: str, env: str, links: bool) -> None:
    """What checks.sh prints for an env at `env` (its real path)."""
    assert f"prefix {env}\n" in out
    assert out.count(f"tiny from {env}\n") == 2, "the console script, directly and on PATH"
    assert f"from {env}/lib/python3.12/site-packages/pip" in out
    assert "pyc ok\n" in out
    assert f"activated {env}\n" in out
    assert (f"links in {env}: 0\n" in out) != links


PLACES = ["/opt/env", "/srv/other place/env"]


@pytest.mark.parametrize(
    ("archive", "extract", "links"),
    [
        pytest.param("env.tar.gz", "tar -xzf /dist/env.tar.gz -C {q}", True, id="busybox-tar"),
        pytest.param("deref.tar.gz", "tar -xzf /dist/deref.tar.gz -C {q}", False, id="deref"),
        pytest.param("env.zip", "unzip -q /dist/env.zip -d {q}", False, id="busybox-unzip"),
    ],
)
def test_extracted_in_a_bare_rootfs_runs_anywhere(
    plain_archives: Path, busybox_root: Path, archive: str, extract: str, links: bool
) -> None:
    lines = ["set -e"]
    for place in PLACES:
        q = shlex.quote(place)
        lines += [f"mkdir -p {q}", extract.format(q=q), f"sh /dist/checks.sh {q}"]
    result = run_in_rootfs(
        busybox_root, ["/bin/sh", "-c", "\n".join(lines)], binds=[(plain_archives, "/dist")]
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    for place in PLACES:
        assert_ran(result.stdout, place, links)


def extract_zip_with_modes(archive: Path, dest: Path) -> None:
    """Python's zipfile, then each member's Unix mode, as permission-aware extractors do."""
    with zipfile.ZipFile(archive) as opened:
        for info in opened.infolist():
            path = Path(opened.extract(info, dest))
            path.chmod(info.external_attr >> 16 & 0o777)


def test_host_extractors_at_two_paths(
    plain_archives: Path, busybox_root: Path, tmp_path: Path
) -> None:
    """GNU tar (as a non-owner would) and Python's zipfile, run inside the bare rootfs."""
    folders = {"gnu-tar": tmp_path / "gnu", "zipfile": tmp_path / "zip"}
    for folder in folders.values():
        folder.mkdir()
    subprocess.run(
        ["tar", "--no-same-owner", "-xzf", plain_archives / "env.tar.gz", "-C", folders["gnu-tar"]],
        check=True,
    )
    extract_zip_with_modes(plain_archives / "env.zip", folders["zipfile"])
    binds = [(plain_archives, "/dist")]
    lines = ["set -e"]
    for name, folder in folders.items():
        for place in PLACES:
            binds.append((folder, f"{place}-{name}"))
            lines.append(f"sh /dist/checks.sh {shlex.quote(f'{place}-{name}')}")
    result = run_in_rootfs(busybox_root, ["/bin/sh", "-c", "\n".join(lines)], binds=binds)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    for name in folders:
        for place in PLACES:
            assert_ran(result.stdout, f"{place}-{name}", links=name == "gnu-tar")


def test_pack_writes_sidecars_and_refuses_what_needs_relocation(
    plain_archives: Path, core_project: Path, package_cache: Path, tmp_path: Path
) -> None:
    """--sbom and OUTPUT.sha256 beside a plain archive; the core project (a C program with a
    compiled-in prefix) is refused with the files named, and nothing is written."""
    sha = (plain_archives / "env.tar.gz.sha256").read_text().split()[0]
    assert f'"{sha}"' in (plain_archives / "env.tar.gz.cdx.json").read_text()
    output = tmp_path / "core.tar.gz"
    done = portenv(
        "pack",
        core_project,
        "--format",
        "tar.gz",
        "-o",
        output,
        "--use-cache",
        package_cache,
        check=False,
    )
    assert done.returncode == 1
    error, hint = done.stderr.strip().splitlines()[-2:]
    assert error.startswith("error: ") and "bin/greet (binary)" in error
    assert hint.startswith("  hint: pack it as env.sh or env.tar")
    assert list(tmp_path.iterdir()) == []


CONDA_CHECKS = r"""
set -e
E=$1
"$E/bin/python" -c 'import os, sys, sysconfig as s
print("conda prefix", os.path.realpath(sys.prefix), s.get_config_var("LIBDIR"))'
"$E/bin/hello-py"
"$E/bin/barcli"
"$E/bin/python3.12-config" --prefix
"$E/bin/python" /dist/pyc_check.py "$E"
ls "$E"/lib/python3.12/__pycache__/_sysconfigdata_*.cpython-312.pyc
if grep -rl portenv_placehold "$E"; then echo "placeholder left"; exit 1; fi
( . "$E/bin/activate"; hello-py )
"""


def test_a_conda_environment_as_plain_tar_gz(
    local_channel: Path, package_cache: Path, busybox_root: Path, tmp_path: Path
) -> None:
    """The local channel's python (its sysconfig data, config script and Makefile follow the
    prefix), a noarch entry point (rattler's launcher) and a C library pair."""
    project = write_project(
        tmp_path / "project", local_channel, ["python 3.12.*", "libbar", "hello-py"]
    )
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "checks.sh").write_text(CONDA_CHECKS)
    (dist / "pyc_check.py").write_text(PYC_CHECK)
    portenv("pack", project, "--format", "tar.gz", "-o", dist / "env.tar.gz",
            "--use-cache", package_cache)  # fmt: skip
    lines = ["set -e"]
    for place in PLACES:
        q = shlex.quote(place)
        lines += [f"mkdir -p {q}", f"tar -xzf /dist/env.tar.gz -C {q}", f"sh /dist/checks.sh {q}"]
    result = run_in_rootfs(
        busybox_root, ["/bin/sh", "-c", "\n".join(lines)], binds=[(dist, "/dist")]
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    for place in PLACES:
        assert f"conda prefix {place} {place}/lib\n" in result.stdout
        assert result.stdout.count(f"hello-py {place}\n") == 2
        assert f"{place}\n" in result.stdout.splitlines(keepends=True)
    assert result.stdout.count("bar=43") == 2
    assert result.stdout.count("pyc ok\n") == 2, "the rewritten _sysconfigdata has bytecode too"

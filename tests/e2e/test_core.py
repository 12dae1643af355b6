"""Pack -> unpack in a bare rootfs with no network -> run, move, relocate, run again."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from tests.conftest import Archives
from tests.support.rootfs import RootfsResult, run_in_rootfs

pytestmark = pytest.mark.e2e

OUTSIDE_LIBS = Path(__file__).resolve().parents[1] / "support" / "outside_libs.py"

CHECKS = r"""
E="$1"
"$E/bin/python" -c 'import ssl, sqlite3, ctypes, json, sys; print("imports ok", sys.prefix)'
"$E/bin/python" /dist/outside_libs.py "$E"
"$E/bin/hello-py"
"$E/bin/greet"
"$E/bin/barcli"
"""


def script(*lines: str) -> list[str]:
    """A `sh -c` argv that stops at the first failing line."""
    return ["/bin/sh", "-c", "set -e\n" + "\n".join(lines)]


def run(root: Path, archives: Archives, *lines: str, **kwargs: object) -> RootfsResult:
    """Run sh lines in a fresh copy of `root` with the archives at /dist."""
    (archives.folder / "checks.sh").write_text(CHECKS)
    shutil.copy(OUTSIDE_LIBS, archives.folder / "outside_libs.py")
    return run_in_rootfs(root, script(*lines), binds=[(archives.folder, "/dist")], **kwargs)  # type: ignore[arg-type]


def unpack_line(mode: str, dest: str, shell: str = "sh") -> str:
    """The command a user types on the target."""
    if mode == "self-extracting":
        return f"{shell} /dist/env.sh -o {shlex.quote(dest)}"
    return f"{shell} /dist/portenv-unpack /dist/env.tar -o {shlex.quote(dest)}"


def expect_ok(result: RootfsResult) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def assert_runs_from(out: str, prefix: str) -> None:
    assert f"imports ok {prefix}" in out
    assert "outside libs: none" in out
    assert f"hello-py {prefix}" in out
    assert "hello from greet" in out, "the compiled-in prefix was not relocated"
    assert "bar=43" in out


TARGETS = [
    pytest.param("busybox", "self-extracting", "sh", id="busybox-sh-env.sh"),
    pytest.param("busybox", "unpacker", "sh", id="busybox-sh-portenv-unpack"),
    pytest.param("trixie", "self-extracting", "sh", id="debian13-dash-env.sh"),
    pytest.param("trixie", "unpacker", "bash", id="debian13-bash-portenv-unpack"),
]


@pytest.mark.parametrize(("target", "mode", "shell"), TARGETS)
def test_unpack_run_move_relocate(
    request: pytest.FixtureRequest, core_archives: Archives, target: str, mode: str, shell: str
) -> None:
    root = request.getfixturevalue(f"{target}_root")
    dest = "/srv/deploy/app one"
    moved = "/home/someone/elsewhere/env2"
    result = run(
        root,
        core_archives,
        "command -v zstd || echo no zstd",  # the default archive needs none (busybox has xz)
        "grep -a -c '^compression=zstd$' /dist/env.tar",
        unpack_line(mode, dest, shell),
        f"sh /dist/checks.sh {shlex.quote(dest + '/env')}",
        "mkdir -p /home/someone/elsewhere",
        f"mv {shlex.quote(dest + '/env')} {moved}",
        f"{moved}/bin/portenv-relocate",
        f"sh /dist/checks.sh {moved}",
        f". {moved}/bin/activate && command -v python && python -c 'import sys; print(sys.prefix)'",
    )
    out = expect_ok(result)
    assert out.startswith("no zstd\n1\n"), out[:200]
    first, second = out.split("imports ok", 2)[1:]
    assert_runs_from("imports ok" + first, dest + "/env")
    assert_runs_from("imports ok" + second, moved)
    assert f"{moved}/bin/python\n{moved}\n" in out
    leftovers = [p for p in result.changed if ".portenv-" in p]
    assert not leftovers, leftovers
    assert_only_under(result, [dest, "/home/someone/elsewhere"])


def assert_only_under(result: RootfsResult, allowed: list[str]) -> None:
    """Nothing was written outside `allowed` (their parent folders may be created)."""
    stray = [
        p
        for p in result.changed
        if not any(p == a or p.startswith(a + "/") or a.startswith(p + "/") for a in allowed)
    ]
    assert not stray, f"written outside {allowed}: {stray}"


def test_list_shows_the_packages_and_writes_nothing(
    core_archives: Archives, busybox_root: Path
) -> None:
    result = run(busybox_root, core_archives, "sh /dist/env.sh --list")
    lines = expect_ok(result).splitlines()
    names = {line.split()[1] for line in lines if line.startswith("conda ")}
    assert {"python", "greet", "libbar", "libfoo", "hello-py"} <= names
    assert all(len(line.split()) == 4 for line in lines if line.startswith("conda "))
    assert result.changed == []


@pytest.mark.parametrize("target", ["busybox", "trixie"])
def test_pieces_unpack_the_same_bytes_as_one_stream(
    request: pytest.FixtureRequest, core_gzip_archives: Archives, target: str
) -> None:
    """The real payload, decompressed in 1 or 3 pieces, gives the same tree, byte for byte.

    On Debian a gzip wrapper on PATH counts the decompressors (busybox sh runs its own gzip
    applet whatever PATH says, so there only the trees are compared)."""
    root = request.getfixturevalue(f"{target}_root")
    tree = "(cd /srv/app/env && find . -type f -exec sha256sum {} + | sort; find . | sort)"
    result = run(
        root,
        core_gzip_archives,
        "sh /dist/env.sh --info | grep -c '^payload_cuts=.* .* '",
        "mkdir /tmp/w && printf '#!/bin/sh\\necho run >>/tmp/gz.log\\nexec %s \"$@\"\\n' "
        '"$(command -v gzip)" >/tmp/w/gzip && chmod +x /tmp/w/gzip',
        "PATH=/tmp/w:$PATH sh /dist/env.sh -o /srv/app -j 1 && echo runs $(wc -l </tmp/gz.log)",
        f"{tree} >/tmp/one",
        "rm -rf /srv/app /tmp/gz.log",
        "PATH=/tmp/w:$PATH sh /dist/env.sh -o /srv/app -j 3 && echo runs $(wc -l </tmp/gz.log)",
        f"{tree} >/tmp/three",
        "cmp /tmp/one /tmp/three && wc -l </tmp/one",
    )
    lines = expect_ok(result).splitlines()
    assert lines[0] == "1", "the archive offers at least two cuts"
    runs = [line for line in lines if line.startswith("runs ")]
    if target == "trixie":
        assert runs == ["runs 1", "runs 3"], lines
    assert int(lines[-1]) > 1000, "the trees were listed"

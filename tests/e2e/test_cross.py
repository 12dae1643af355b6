"""An environment packed for linux-aarch64 on this machine runs on an arm64 target.

The targets are Debian arm64's glibc + busybox and Debian 13 minbase of arm64 (dash, GNU tar
and gzip), no network, no zstd, every program run through qemu-user (binfmt_misc): unpack the
default archive (zstd, carrying its aarch64 decompressor), run python, a C program with a
compiled-in prefix and a console script, then move it, relocate and run again, with both
unpackers.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.conftest import Archives
from tests.e2e.test_core import (
    assert_only_under,
    assert_runs_from,
    expect_ok,
    run,
    script,
    unpack_line,
)
from tests.e2e.test_first_start import PROBE, probe_line
from tests.support.rootfs import run_in_rootfs

pytestmark = pytest.mark.e2e


def test_the_target_is_an_aarch64_machine(arm64_target: Path) -> None:
    probe = script("uname -m", "ls -d /lib/ld-linux-aarch64.so.1", "command -v zstd xz || :")
    result = run_in_rootfs(arm64_target, probe)
    assert expect_ok(result).split() == ["aarch64", "/lib/ld-linux-aarch64.so.1"]


@pytest.mark.parametrize("mode", ["self-extracting", "unpacker"])
def test_unpack_run_move_relocate_on_aarch64(
    cross_archives: Archives, arm64_target: Path, mode: str
) -> None:
    dest = "/srv/deploy/app"
    moved = "/home/someone/elsewhere/env2"
    result = run(
        arm64_target,
        cross_archives,
        unpack_line(mode, dest),
        f"sh /dist/checks.sh {shlex.quote(dest + '/env')}",
        "mkdir -p /home/someone/elsewhere",
        f"mv {dest}/env {moved}",
        f"{moved}/bin/portenv-relocate",
        f"sh /dist/checks.sh {moved}",
        f"{moved}/bin/python -c 'import platform; print(\"machine\", platform.machine())'",
        timeout=600,
    )
    out = expect_ok(result)
    first, second = out.split("imports ok", 2)[1:]
    assert_runs_from("imports ok" + first, dest + "/env")
    assert_runs_from("imports ok" + second, moved)
    assert "machine aarch64" in out
    assert_only_under(result, [dest, "/home/someone/elsewhere"])


SYSCONFIGDATA = "_sysconfigdata__linux_aarch64-linux-gnu"
"""Names the env's prefix: relocated on the target, so its bytecode is compiled there."""


def test_the_bytecode_compiled_on_this_machine_is_used_on_aarch64(
    cross_archives: Archives, arm64_root: Path
) -> None:
    """Compiled by a CPython 3.11 of the build machine: the target's 3.11 takes it as it is,
    and the sysconfigdata that held the placeholder was compiled by the relocation."""
    (cross_archives.folder / "probe.py").write_text(PROBE)
    env = "/opt/arm/env"
    result = run(
        arm64_root,
        cross_archives,
        unpack_line("self-extracting", "/opt/arm"),
        f"{env}/bin/python /dist/probe.py json email.parser hello_py {SYSCONFIGDATA}",
        f"{env}/bin/python -c 'import sysconfig; print(sysconfig.get_config_var(\"prefix\"))'",
        timeout=600,
    )
    found = probe_line(result)
    assert found["compiled"] == [] and found["stale"] == []
    assert isinstance(found["checked"], int) and found["checked"] > 50
    assert f"{env}\n" in expect_ok(result)

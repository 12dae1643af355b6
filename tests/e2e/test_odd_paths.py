"""Odd paths end to end: spaces and non-ASCII names pack and unpack; an overlong one is refused.

A project folder `projét dir/` is packed to `sortie é.sh`, which is unpacked in the busybox
rootfs into `/opt/dést dir/` and run there. A destination longer (in bytes) than the space
the archive reserved is refused with exit 5, a message that names the limit, and nothing
written anywhere in the rootfs.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from tests.conftest import Archives, portenv
from tests.e2e.test_core import assert_only_under, assert_runs_from, expect_ok, run
from tests.e2e.test_core_refusals import refused
from tests.integration.test_pack import meta_of
from tests.support.hardening import record

pytestmark = [pytest.mark.e2e, pytest.mark.hardening]

OUTPUT = "sortie é.sh"
DEST = "/opt/dést dir"


def test_spaces_and_non_ascii_names_pack_and_unpack(
    core_project: Path, package_cache: Path, busybox_root: Path, tmp_path: Path
) -> None:
    project = tmp_path / "projét dir"
    project.mkdir()
    for name in ("pixi.toml", "pixi.lock"):
        shutil.copy(core_project / name, project / name)
    dist = tmp_path / "dist"
    dist.mkdir()
    done = portenv("pack", project, "-o", dist / OUTPUT, "--use-cache", package_cache)
    assert done.stdout.endswith(f"  {dist / OUTPUT}\n"), done.stdout
    assert (dist / f"{OUTPUT}.sha256").read_text().endswith(f"  {OUTPUT}\n")
    archives = Archives(dist, dist / OUTPUT, dist / "env.tar", dist / "portenv-unpack")
    env = f"{DEST}/env"
    result = run(
        busybox_root,
        archives,
        f"sh {shlex.quote('/dist/' + OUTPUT)} -o {shlex.quote(DEST)}",
        f"sh /dist/checks.sh {shlex.quote(env)}",
    )
    assert_runs_from(expect_ok(result), env)
    assert "portenv: unpacked" in result.stderr and env in result.stderr
    assert_only_under(result, [DEST])
    record("bad input", "project 'projét dir/', output 'sortie é.sh', dest 'dést dir'", "works")


def _long_destination(size: int) -> str:
    """An absolute folder whose `/env` path is longer than `size` bytes, in short components."""
    parts = ["/opt"]
    while len("/".join(parts).encode()) + len("/env") <= size:
        parts.append("dossier-é" * 10)  # 100 bytes: every name stays under NAME_MAX
    return "/".join(parts)


@pytest.mark.parametrize("mode", ["env.sh", "portenv-unpack"])
def test_a_destination_too_long_for_the_reserved_prefix(
    core_archives: Archives, busybox_root: Path, mode: str
) -> None:
    limit = int(meta_of(core_archives.tar)["prefix_max"])
    folder = _long_destination(limit)
    dest = f"{folder}/env"
    size = len(dest.encode())
    assert size > limit, (size, limit)
    archive = "/dist/env.sh" if mode == "env.sh" else "/dist/portenv-unpack /dist/env.tar"
    result = run(busybox_root, core_archives, f"sh {archive} -o {shlex.quote(folder)}")
    first = refused(result, 5, f"is {size} bytes long")
    assert f"at most {limit}" in first, first
    assert result.changed == [], result.changed
    record(
        "bad input",
        f"destination of {size} bytes ({mode}), limit {limit}",
        "refused, exit 5, nothing written",
        outside_writes=len(result.changed),
    )

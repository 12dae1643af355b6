"""Fixtures of the unit tests: the shells and archive shapes the sh unpacker is run with."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.unpacksh import Shell, Unpacker


@pytest.fixture(scope="session")
def busybox_bin(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    busybox = shutil.which("busybox")
    if busybox is None:
        return None
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    bindir = tmp_path_factory.mktemp("busybox-bin")
    for applet in applets.stdout.split():
        if "/" not in applet:
            (bindir / applet).symlink_to(busybox)
    return bindir


@pytest.fixture(params=["dash", "bash", "busybox"])
def shell(request: pytest.FixtureRequest, busybox_bin: Path | None) -> Shell:
    name: str = request.param
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not installed: run scripts/install-system-deps.sh --tests")
    path = os.environ.get("PATH", "/usr/bin:/bin")
    if name == "busybox":
        assert busybox_bin is not None
        return Shell(name, (exe, "sh"), f"{busybox_bin}{os.pathsep}{path}")
    return Shell(name, (exe,), path)


@pytest.fixture(params=["tar", "sh"])
def shape(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def up(shell: Shell, shape: str, tmp_path: Path) -> Unpacker:
    return Unpacker(shell, shape, tmp_path)

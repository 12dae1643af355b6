"""Session fixtures: the local conda channel, a packed test project, and bare rootfs targets."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.channel import build_local_channel, write_project
from tests.support.crosschannel import build_cross_channel, cross_python_spec
from tests.support.rootfs import busybox_rootfs, debian_rootfs

CORE_SPECS = ["python 3.12.*", "greet", "libbar", "hello-py"]
_exit_status = 0


def portenv(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the portenv CLI in a child process, as a user would."""
    argv = [sys.executable, "-m", "portenv", *map(str, args)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        pytest.fail(f"portenv {' '.join(map(str, args))} failed:\n{done.stderr}")
    return done


@pytest.fixture(scope="session")
def local_channel() -> Path:
    """A file:// conda channel built from the recipes in tests/support/recipes."""
    return build_local_channel()


@pytest.fixture(scope="session")
def package_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One portenv package cache for the whole session."""
    return tmp_path_factory.mktemp("portenv-cache")


@pytest.fixture(scope="session")
def core_project(local_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """python + a C program with a compiled-in prefix + a library pair + a noarch entry point."""
    return write_project(tmp_path_factory.mktemp("core") / "project", local_channel, CORE_SPECS)


@dataclass(frozen=True)
class Archives:
    """The three files a user ships: env.sh, env.tar and the standalone unpacker."""

    folder: Path
    self_extracting: Path
    tar: Path
    unpacker: Path


@pytest.fixture(scope="session")
def core_archives(core_project: Path, package_cache: Path) -> Archives:
    """The core project packed both ways, with the default codec (zstd, carrying its
    decompressor)."""
    return _pack_both(core_project, package_cache, core_project.parent / "dist")


@pytest.fixture(scope="session")
def core_gzip_archives(core_project: Path, package_cache: Path) -> Archives:
    """The core project packed both ways as single-stage gzip archives (payload_cuts)."""
    folder = core_project.parent / "dist-gzip"
    return _pack_both(core_project, package_cache, folder, "--compression", "gzip")


def _pack_both(project: Path, package_cache: Path, dist: Path, *options: str) -> Archives:
    dist.mkdir()
    for name in ("env.sh", "env.tar"):
        portenv("pack", project, "-o", dist / name, "--use-cache", package_cache, *options)
    portenv("unpacker", "-o", dist / "portenv-unpack")
    return Archives(dist, dist / "env.sh", dist / "env.tar", dist / "portenv-unpack")


@pytest.fixture(scope="session")
def cross_channel() -> Path:
    """The same recipes for linux-aarch64: cross-compiled C, Debian's arm64 CPython."""
    return build_cross_channel("aarch64")


@pytest.fixture(scope="session")
def cross_project(cross_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The core project's packages, locked for linux-aarch64 only."""
    specs = [cross_python_spec(), *CORE_SPECS[1:]]
    folder = tmp_path_factory.mktemp("cross") / "project"
    return write_project(folder, cross_channel, specs, platform="linux-aarch64")


@pytest.fixture(scope="session")
def cross_archives(cross_project: Path, package_cache: Path) -> Archives:
    """The aarch64 project packed on this machine, both ways."""
    dist = cross_project.parent / "dist"
    dist.mkdir()
    for name in ("env.sh", "env.tar"):
        out = dist / name
        portenv(
            "pack", cross_project, "-p", "linux-aarch64", "-o", out, "--use-cache", package_cache
        )
    portenv("unpacker", "-o", dist / "portenv-unpack")
    return Archives(dist, dist / "env.sh", dist / "env.tar", dist / "portenv-unpack")


@pytest.fixture(scope="session")
def arm64_root() -> Path:
    """glibc + busybox of Debian arm64, run through qemu: an aarch64 target on this machine."""
    return busybox_rootfs("aarch64")


@pytest.fixture(scope="session")
def arm64_trixie_root() -> Path:
    """Debian 13 minbase of arm64 (dash, GNU tar and gzip), run through qemu."""
    return debian_rootfs("trixie", "aarch64")


@pytest.fixture(params=["busybox", "trixie"])
def arm64_target(request: pytest.FixtureRequest) -> Path:
    """Each aarch64 target: glibc + busybox, and Debian 13 minbase."""
    name = "arm64_root" if request.param == "busybox" else "arm64_trixie_root"
    return Path(request.getfixturevalue(name))


@pytest.fixture(scope="session")
def busybox_root() -> Path:
    """glibc + busybox: the strictest target."""
    return busybox_rootfs()


@pytest.fixture(scope="session")
def trixie_root() -> Path:
    """Debian 13 minbase: dash as /bin/sh, bash, coreutils."""
    return debian_rootfs("trixie")


@pytest.fixture(scope="session")
def bullseye_root() -> Path:
    """Debian 11 minbase: glibc 2.31, too old for the test python."""
    return debian_rootfs("bullseye")


ROOTFS_FIXTURES = frozenset(
    {"busybox_root", "trixie_root", "bullseye_root", "arm64_root", "arm64_trixie_root"}
)
"""Fixtures of the bare targets: a test that takes one runs in namespaces, as root."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on a rootfs are marked `root`; end-to-end tests run last, so a quick failure
    shows first."""
    for item in items:
        if "e2e" in item.keywords or ROOTFS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.root)
    items.sort(key=lambda item: "e2e" in item.nodeid.split("/"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remember the status for pytest_unconfigure."""
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without interpreter finalization.

    The session ran rattler.solve in-process (the channel fixture), and py-rattler's async
    runtime can crash during finalization after all work is done (FIELD-NOTES): a green run
    must not turn into a random SIGSEGV.
    """
    _save_coverage()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)


def _save_coverage() -> None:
    """os._exit skips the atexit hook where coverage writes its data: write it here."""
    try:
        import coverage
    except ImportError:
        return
    current = coverage.Coverage.current()
    if current is not None:
        current.stop()
        current.save()

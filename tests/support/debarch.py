"""Debian packages of another architecture, and running its binaries here through qemu.

The cross-platform tests need arm64 files (glibc, busybox, CPython and its libraries) on an
x86_64 machine. The host's apt is left alone (no ``dpkg --add-architecture``): a private apt
state under the test cache reads the host's own sources (so no mirror name is written here),
with ``APT::Architecture`` set to the foreign one, and resolves and downloads the dependency
closure of the packages asked for, starting from an empty dpkg status.

Running arm64 programs (busybox's ``--install``, the env inside an arm64 rootfs) goes through
the kernel's binfmt_misc and Debian's ``qemu-user-static``, registered with its own line (flags
F and P): with F the kernel opens the emulator once, at registration, so it also works inside
a chroot or a mount namespace whose root has no emulator. An entry the host already has is
used as it is (and never removed).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.host import cache_root, locked, run_host

__all__ = [
    "DEBIAN_ARCH",
    "ForeignDebs",
    "QemuUnavailableError",
    "extract",
    "foreign_debs",
    "register_qemu",
]

DEBIAN_ARCH = {"aarch64": "arm64", "x86_64": "amd64"}
"""``uname -m`` -> Debian architecture."""
_LISTS_MAX_AGE = 7 * 86400
_BINFMT = Path("/proc/sys/fs/binfmt_misc")
_BINFMT_D = (Path("/usr/lib/binfmt.d"), Path("/etc/binfmt.d"))
"""Where qemu-user-static puts its registration lines (systemd-binfmt reads them)."""


class QemuUnavailableError(RuntimeError):
    """This machine cannot run binaries of the other architecture (no qemu, no binfmt_misc)."""


@dataclass(frozen=True)
class _PrivateApt:
    """apt-get with its own state, cache and architecture; the host's sources and keys."""

    root: Path
    arch: str

    def argv(self, *args: str, archives: str = "archives") -> list[str]:
        options = {
            "Dir::State": self.root / "state",
            "Dir::State::status": self.root / "status",
            "Dir::Cache": self.root / "cache",
            "Dir::Cache::archives": archives,
            "APT::Architecture": self.arch,
            "APT::Architectures::": self.arch,
            "Debug::NoLocking": "1",
            "APT::Sandbox::User": "root",
        }
        flags = [f for key, value in options.items() for f in ("-o", f"{key}={value}")]
        return ["apt-get", "-q", *flags, *args]

    def prepare(self) -> None:
        """Create the folders and refresh the package lists when older than a week."""
        for sub in ("state/lists/partial", "cache/archives/partial", "cache/none/partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "status").touch()
        stamp = self.root / "lists.stamp"
        if not stamp.is_file() or time.time() - stamp.stat().st_mtime > _LISTS_MAX_AGE:
            run_host(self.argv("update"), what=f"apt-get update ({self.arch})")
            stamp.touch()

    def closure(self, packages: Sequence[str]) -> list[str]:
        """The .deb file names apt would install for ``packages`` into an empty system.

        apt prints only what is not downloaded yet: ask it with an empty archives folder.
        """
        argv = ("install", "--print-uris", "-y", "--no-install-recommends", *packages)
        out = run_host(
            self.argv(*argv, archives="none"),
            what=f"resolving {' '.join(packages)} ({self.arch})",
        )
        return sorted(re.findall(r"^'[^']+' (\S+\.deb) ", out, re.M))

    def download(self, packages: Sequence[str]) -> None:
        run_host(
            self.argv("install", "--download-only", "-y", "--no-install-recommends", *packages),
            what=f"downloading {' '.join(packages)} ({self.arch})",
        )


@dataclass(frozen=True)
class ForeignDebs:
    """The downloaded closure of some packages of one architecture."""

    arch: str
    files: tuple[Path, ...]

    @property
    def key(self) -> str:
        """A short hash of the exact file names (name_version_arch): the cache key of builds."""
        names = "\n".join(f.name for f in self.files)
        return hashlib.sha256(names.encode()).hexdigest()[:16]

    def named(self, package: str) -> Path:
        """The .deb of one package of the closure."""
        for file in self.files:
            if file.name.startswith(f"{package}_"):
                return file
        msg = f"{package} is not in the downloaded closure ({self.arch})"
        raise KeyError(msg)


def foreign_debs(machine: str, packages: Sequence[str]) -> ForeignDebs:
    """Download (or reuse) ``packages`` and their dependencies for ``machine`` (``aarch64``)."""
    arch = DEBIAN_ARCH[machine]
    apt = _PrivateApt(cache_root() / f"apt-{arch}", arch)
    with locked(apt.root.with_name(f"apt-{arch}.lock")):
        apt.prepare()
        names = apt.closure(packages)
        archives = apt.root / "cache" / "archives"
        if not all((archives / n).is_file() for n in names):
            apt.download(packages)
    # apt names files with the epoch's colon escaped as %3a.
    return ForeignDebs(arch, tuple(archives / n.replace(":", "%3a") for n in names))


def extract(debs: Sequence[Path], dest: Path) -> None:
    """Unpack the files of each .deb into ``dest`` (no maintainer scripts run)."""
    dest.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        run_host(["dpkg-deb", "-x", str(deb), str(dest)], what=f"extracting {deb.name}")


def register_qemu(machine: str) -> str:
    """Make the kernel run ``machine`` binaries through qemu; return the binfmt entry's name.

    Mounts binfmt_misc when it is not, keeps an entry the host has, and otherwise writes the
    registration line qemu-user-static ships (binfmt.d), which its postinst leaves to systemd.
    The entry needs the F flag (chroots) and P: busybox picks its applet from argv[0], which
    qemu passes on only in that mode.
    """
    if not (_BINFMT / "register").exists():
        run_host(["mount", "-t", "binfmt_misc", "binfmt_misc", str(_BINFMT)], what="binfmt_misc")
    if (_BINFMT / "status").read_text().strip() != "enabled":
        msg = f"binfmt_misc is disabled on this machine ({_BINFMT}/status)"
        raise QemuUnavailableError(msg)
    name = f"qemu-{machine}"
    entry = _BINFMT / name
    with locked(cache_root() / "binfmt.lock"):
        if not entry.exists():
            (_BINFMT / "register").write_text(_registration(name))
    text = entry.read_text()
    flags = re.search(r"^flags:\s*(\S*)", text, re.M)
    if "enabled" not in text.splitlines()[0] or flags is None or not {"F", "P"} <= set(flags[1]):
        msg = f"the binfmt entry {entry} is disabled or lacks the F or P flag:\n{text}"
        raise QemuUnavailableError(msg)
    return name


def _registration(name: str) -> str:
    """The ``:name:M::magic:mask:interpreter:flags`` line of Debian's qemu-user-static."""
    for folder in _BINFMT_D:
        conf = folder / f"{name}.conf"
        if conf.is_file():
            line = conf.read_text().strip()
            interpreter = line.split(":")[6] if line.count(":") >= 7 else ""
            if os.access(interpreter, os.X_OK):
                return line
    msg = (
        f"no binfmt registration for {name}: "
        "run scripts/install-system-deps.sh --tests (qemu-user-static)"
    )
    raise QemuUnavailableError(msg)

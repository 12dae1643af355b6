"""The machine and tool versions the figures were measured with."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench.config import REPO


def _out(argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd)
    except OSError:
        return "not found"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else ""


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _mem_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _os() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.platform()


def _rootfs_tool(rootfs: Path, name: str) -> str:
    from tests.support.rootfs import run_in_rootfs

    result = run_in_rootfs(rootfs, [name, "--version"])
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else "?"


def load_average() -> str:
    """1/5/15-minute load: the machine may be shared (other sessions' test runs)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine_facts(tools: Path, rootfs: Path) -> dict[str, str]:
    import portenv

    commit = _out(["git", "rev-parse", "--short", "HEAD"], cwd=REPO)
    dirty = _out(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load average at the start": load_average(),
        "cpu": _cpu(),
        "cores": str(os.cpu_count()),
        "memory": f"{_mem_gib():.0f} GiB",
        "os": f"{_os()}, kernel {platform.release()}",
        "filesystem": _out(["stat", "-f", "-c", "%T", str(tools)]),
        "portenv": f"{portenv.__version__} at {commit}"
        + (" (with uncommitted changes in the work tree)" if dirty else ""),
        "bench python": sys.version.split()[0],
        "conda-pack": _out([str(tools / "bin" / "conda-pack"), "--version"]),
        "uv": _out([str(Path(sys.executable).parent / "uv"), "--version"]),
        "host tar": _out(["tar", "--version"]),
        "host gzip": _out(["gzip", "--version"]),
        "target": f"{rootfs.name} (debootstrap minbase), "
        f"{_rootfs_tool(rootfs, 'tar')}, {_rootfs_tool(rootfs, 'gzip')}",
    }

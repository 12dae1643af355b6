"""What the suite builds and how often it repeats each measurement."""

from __future__ import annotations

import glob
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    """Everything built (environments, archives, tool venv) lives here, outside the repo."""
    configured = os.environ.get("PORTENV_BENCH_CACHE")
    root = Path(configured) if configured else Path.home() / ".cache" / "portenv-bench"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


@dataclass(frozen=True)
class EnvSpec:
    """One benchmark environment."""

    name: str
    python: str
    """major.minor of the conda python (the local channel's relocated CPython)."""
    pypi: tuple[str, ...]
    """PyPI requirements, resolved for the target when the project is first written."""
    imports: str
    """What the cold-start measurement imports."""
    reps_pack: int
    reps_unpack: int
    what: str
    local_wheels: tuple[Path, ...] = field(default=())


def torch_cpu_wheel() -> Path | None:
    """The CPU torch 2.13.0 wheel for CPython 3.11 that lies on this machine's disk.

    Only pip's find-links folders (and /opt/wheels) are searched; the suite never lets a
    resolver near ``torch`` (PyPI's linux wheels are CUDA builds of several GB).
    """
    explicit = os.environ.get("PORTENV_BENCH_TORCH_WHEEL")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    folders = ["/opt/wheels"]
    try:
        out = subprocess.run(
            ["python3", "-m", "pip", "config", "get", "global.find-links"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        folders += [p for p in out.split() if not p.startswith(("http:", "https:"))]
    except OSError:
        pass
    for folder in folders:
        folder = folder.removeprefix("file://")
        hits = sorted(glob.glob(os.path.join(folder, "torch-2.13.0+cpu-cp311-cp311-*x86_64.whl")))
        if hits:
            return Path(hits[0])
    return None


def environments(reps_scale: float = 1.0) -> list[EnvSpec]:
    """S, M and L; L only when the CPU torch wheel is on disk."""

    def reps(n: int) -> int:
        return max(1, round(n * reps_scale))

    envs = [
        EnvSpec(
            "S",
            "3.12",
            ("requests", "httpx"),
            "import requests, httpx",
            reps(7),
            reps(7),
            "python 3.12 + requests + httpx (the seed's example)",
        ),
        EnvSpec(
            "M",
            "3.12",
            ("numpy", "scipy", "pandas", "matplotlib"),
            "import numpy, scipy.linalg, pandas, matplotlib",
            reps(3),
            reps(5),
            "python 3.12 + numpy, scipy, pandas, matplotlib",
        ),
    ]
    torch = torch_cpu_wheel()
    if torch is not None:
        envs.append(
            EnvSpec(
                "L",
                "3.11",
                # torch's own requirements (its wheel is a local file: nothing resolves it),
                # networkx capped below 3.6: tests/support's lock check mis-normalises
                # 3.6's Requires-Python ('!=3.14.1,>=3.11').
                (
                    "numpy",
                    "filelock",
                    "typing-extensions>=4.10.0",
                    "setuptools>=77.0.3",
                    "sympy>=1.13.3",
                    "networkx>=2.5.1,<3.6",
                    "jinja2",
                    "fsspec>=0.8.5",
                ),
                "import torch, numpy",
                reps(3),
                reps(3),
                "python 3.11 + torch 2.13.0 (CPU build, the wheel on disk) + numpy",
                (torch,),
            )
        )
    return envs

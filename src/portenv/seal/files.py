"""Small file helpers of the seal stage: the shipped target files, and writing with a mode."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["target_file", "write_text"]


def target_file(name: str) -> str:
    """The text of a file shipped in portenv.target."""
    return resources.files("portenv.target").joinpath(name).read_text(encoding="utf-8")


def write_text(path: Path, text: str, mode: int) -> None:
    """Write a new file (creating its folder) with exactly `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)

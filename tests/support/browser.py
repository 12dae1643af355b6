"""A real headless browser (Debian's chromium) to render pages: their DOM after scripts ran,
what they wrote to the console, a screenshot.

No network: every host name resolves to nothing, so a page that needs one fails loudly (a
console error) instead of fetching it. Each run gets a fresh, empty profile.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["Rendered", "render", "screenshot"]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
)
_TIMEOUT = 120


@dataclass(frozen=True)
class Rendered:
    """A page after its scripts ran."""

    dom: str
    console: list[str]
    """What the page logged (messages, uncaught errors), one line each."""


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed: sh scripts/install-system-deps.sh --tests")
    return found


def _run(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="portenv-browser-") as profile:
        argv = [_chromium(), *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def render(page: Path) -> Rendered:
    """The DOM of `page` once loaded (``--dump-dom``) and its console lines."""
    done = _run(page, "--dump-dom")
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return Rendered(done.stdout, console)


def screenshot(page: Path, output: Path, width: int, height: int) -> None:
    """A PNG of the top `height` pixels of `page` in a window `width` wide."""
    _run(page, f"--screenshot={output}", f"--window-size={width},{height}")
    assert output.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), output

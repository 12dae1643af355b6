"""The CLI's reporter: what it prints on a terminal, elsewhere, and when quiet."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from portenv.cli.progress import RichReporter

CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_steps(terminal: bool, quiet: bool) -> str:
    """A sized step, an unsized one, a note and a warning; what reached the console."""
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=terminal, width=100)
    reporter = RichReporter(console, quiet=quiet)
    token = reporter.on_task_start("compressing", 2_000_000)
    reporter.on_task_advance(token, 1_500_000)
    reporter.on_task_complete(token)
    token = reporter.on_task_start("sealing", None)
    reporter.on_task_complete(token)
    reporter.on_info("a note")
    reporter.on_warning("a warning")
    reporter.close()
    return stream.getvalue()


def test_a_terminal_gets_a_line_per_finished_step() -> None:
    text = CONTROL.sub("", run_steps(terminal=True, quiet=False))
    assert re.search(r"done compressing, 1\.5 MB in [0-9.]+ s", text)
    assert re.search(r"done sealing in [0-9.]+ s", text), "an unsized step says no size"
    assert "a note" in text and "warning: a warning" in text


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_quiet_keeps_only_warnings(terminal: bool) -> None:
    assert CONTROL.sub("", run_steps(terminal=terminal, quiet=True)).strip() == (
        "warning: a warning"
    )


def test_elsewhere_only_notes_and_warnings() -> None:
    assert run_steps(terminal=False, quiet=False) == "a note\nwarning: a warning\n"

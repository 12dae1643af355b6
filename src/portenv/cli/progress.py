"""The rich Reporter: progress bars on a terminal, plain lines elsewhere, nothing when quiet."""

from __future__ import annotations

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

__all__ = ["RichReporter"]


class _SizeColumn(ProgressColumn):
    """``done / total`` in bytes for a step that knows its size; nothing for one that does not."""

    def render(self, task: Task) -> Text:
        """The sizes of one bar."""
        if task.total is None:
            return Text("")
        return Text(f"{decimal(int(task.completed))} / {decimal(int(task.total))}")


class RichReporter:
    """One bar per step on stderr when it is a terminal, and a line for each step finished.

    In a pipe nothing is drawn (notes and warnings stay plain lines); `quiet` also drops the
    notes, so only warnings (and the CLI's errors) are printed.
    """

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self._drawing = self.console.is_terminal and not quiet
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            _SizeColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=not self._drawing,
        )
        self._started = False

    def on_task_start(self, label: str, total: int | None) -> int:
        """Add a bar."""
        if not self._started:
            self._progress.start()
            self._started = True
        return int(self._progress.add_task(label, total=total))

    def on_task_advance(self, token: int, amount: int) -> None:
        """Move a bar."""
        self._progress.advance(TaskID(token), amount)

    def on_task_complete(self, token: int) -> None:
        """Remove a finished bar; on a terminal, leave a line saying what it did."""
        task = next((t for t in self._progress.tasks if t.id == token), None)
        self._progress.remove_task(TaskID(token))
        if task is None or not self._drawing:
            return
        size = f", {decimal(int(task.completed))}" if task.total or task.completed else ""
        elapsed = task.elapsed or 0.0
        line = Text.assemble(("done ", "green"), f"{task.description}{size} in {elapsed:.1f} s")
        self.console.print(line, highlight=False)

    def on_warning(self, message: str) -> None:
        """Print a warning line (one line, whatever the width; brackets are not markup)."""
        line = Text.assemble(("warning:", "yellow"), " ", message)
        self.console.print(line, highlight=False, soft_wrap=True)

    def on_info(self, message: str) -> None:
        """Print a note unless quiet (one line, whatever the width; brackets are not markup)."""
        if not self.quiet:
            self.console.print(Text(message), highlight=False, soft_wrap=True)

    def close(self) -> None:
        """Stop drawing."""
        if self._started:
            self._progress.stop()
            self._started = False

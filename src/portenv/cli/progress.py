"""The rich Reporter: progress bars on a terminal, plain lines elsewhere."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

__all__ = ["RichReporter"]


class RichReporter:
    """Draws one bar per task on stderr when it is a terminal; otherwise stays quiet."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
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
        """Remove a finished bar."""
        self._progress.remove_task(TaskID(token))

    def on_warning(self, message: str) -> None:
        """Print a warning line (one line, whatever the width; brackets are not markup)."""
        line = Text.assemble(("warning:", "yellow"), " ", message)
        self.console.print(line, highlight=False, soft_wrap=True)

    def on_info(self, message: str) -> None:
        """Print a note (one line, whatever the width; brackets are not markup)."""
        self.console.print(Text(message), highlight=False, soft_wrap=True)

    def close(self) -> None:
        """Stop drawing."""
        if self._started:
            self._progress.stop()
            self._started = False

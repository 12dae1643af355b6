"""How the library tells the outside about progress and warnings without printing itself."""

from __future__ import annotations

from typing import Protocol

__all__ = ["NullReporter", "Reporter"]


class Reporter(Protocol):
    """Progress hooks: the CLI draws bars, tests record, the default ignores."""

    def on_task_start(self, label: str, total: int | None) -> int:
        """A long step begins; `total` is in bytes (or items) when known. Returns a token."""
        ...

    def on_task_advance(self, token: int, amount: int) -> None:
        """`amount` more bytes (or items) of the step are done."""
        ...

    def on_task_complete(self, token: int) -> None:
        """The step is finished."""
        ...

    def on_warning(self, message: str) -> None:
        """Something the user should know, that does not stop the work."""
        ...

    def on_info(self, message: str) -> None:
        """A one-line note on what was done."""
        ...


class NullReporter:
    """Reports nothing: the library's default."""

    def on_task_start(self, label: str, total: int | None) -> int:
        """Ignore."""
        return 0

    def on_task_advance(self, token: int, amount: int) -> None:
        """Ignore."""

    def on_task_complete(self, token: int) -> None:
        """Ignore."""

    def on_warning(self, message: str) -> None:
        """Ignore."""

    def on_info(self, message: str) -> None:
        """Ignore."""

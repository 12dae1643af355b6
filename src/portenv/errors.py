"""The whole portenv error hierarchy: every user-facing failure is one of these."""

from __future__ import annotations

__all__ = [
    "CompatibilityError",
    "DiskSpaceError",
    "ExtractionError",
    "FetchError",
    "HashMismatchError",
    "InputError",
    "LockFileError",
    "ManifestError",
    "OutputError",
    "OutputExistsError",
    "PortenvError",
    "RelocationError",
    "ResolveError",
    "SealError",
    "StageError",
    "UsageError",
]


class PortenvError(Exception):
    """A failure the user can act on: printed as one line plus a hint, never a traceback."""

    exit_code: int = 1
    """The command's exit status (the unpackers give each kind its own: format.Exit)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(PortenvError):
    """The user's input (paths, options, files) is wrong."""


class UsageError(InputError):
    """Options that cannot go together, or one that does not apply to what is packed: refused
    (exit 2, as a command-line syntax error) instead of silently ignored."""

    exit_code = 2


class ManifestError(InputError):
    """pixi.toml / pyproject.toml is missing or not a pixi manifest."""


class LockFileError(InputError):
    """pixi.lock is missing, unreadable or of an unsupported version."""


class ResolveError(PortenvError):
    """The requested environment or platform does not exist in the lock."""


class FetchError(PortenvError):
    """A package could not be downloaded or read."""


class HashMismatchError(FetchError):
    """A downloaded or cached file does not have the hash the lock records."""

    def __init__(self, name: str, url: str, expected: str, actual: str) -> None:
        msg = f"hash mismatch for {name}: expected {expected}, got {actual} ({url})"
        super().__init__(msg, hint="the file changed upstream or was corrupted; re-lock or retry")
        self.name = name
        self.url = url
        self.expected = expected
        self.actual = actual


class StageError(PortenvError):
    """Installing the packages into the staging prefix failed."""


class SealError(PortenvError):
    """The staged prefix cannot be made relocatable or checked."""


class RelocationError(SealError):
    """A prefix does not fit the space reserved for it."""


class CompatibilityError(SealError):
    """The environment cannot run on the requested target."""


class OutputError(PortenvError):
    """The output file cannot be written."""


class DiskSpaceError(OutputError):
    """Not enough free space where the environment goes."""


class ExtractionError(OutputError):
    """Writing the environment failed after every check passed (a full disk, an I/O error)."""


class OutputExistsError(OutputError):
    """The output exists and would be overwritten."""

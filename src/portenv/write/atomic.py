"""Files that appear whole or not at all: a temp file beside the target, renamed over it.

Its own module so that every writer (the archive, its sidecars, the kept payloads that the
package itself imports) can use it without importing `portenv.write` in a cycle.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from portenv.errors import OutputError

__all__ = ["atomic_output"]


class atomic_output:
    """A temp file beside `path`, renamed over it on success and removed on any failure."""

    def __init__(self, path: Path, mode: int = 0o644) -> None:
        self.path = path
        self.mode = mode
        self.stream: BinaryIO | None = None
        self._tmp = ""

    def __enter__(self) -> BinaryIO:
        try:
            fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        except OSError as exc:
            msg = f"cannot write into {self.path.parent}: {exc.strerror}"
            raise OutputError(msg, hint="choose an output folder you can write to") from exc
        self.stream = os.fdopen(fd, "w+b")
        return self.stream

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        assert self.stream is not None
        self.stream.close()
        if kind is None:
            os.chmod(self._tmp, self.mode)
            os.replace(self._tmp, self.path)
        else:
            os.unlink(self._tmp)

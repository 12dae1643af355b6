"""The command a one-file app runs (`portenv pack --entry`): its form, and that the env has it.

The command is written into the env.sh header as a fixed-width, single-quoted sh field (see
docs/format.md), so it is limited to words of characters that need no quoting in sh; its first
word names a file of the environment's `bin/`.
"""

from __future__ import annotations

import re
from pathlib import Path

from portenv.errors import InputError

__all__ = ["ENTRY_WIDTH", "check_entry", "console_scripts", "parse_entry"]

ENTRY_WIDTH = 120
"""Bytes of the header's entry field: the command, its words separated by one space."""
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")
_WORD = re.compile(r"[A-Za-z0-9._+,:=@%/-]+")
_HINT = "give a name from the environment's bin/, e.g. --entry mytool or --entry 'python -m mypkg'"


def parse_entry(text: str) -> str:
    """The entry's words joined by single spaces, or InputError for one the header cannot hold.

    >>> parse_entry("  python  -m mypkg ")
    'python -m mypkg'
    """
    words = text.split()
    if not words:
        msg = "--entry needs a command"
        raise InputError(msg, hint=_HINT)
    if not _NAME.fullmatch(words[0]):
        msg = f"--entry must start with a command name of the environment's bin/, not {words[0]!r}"
        raise InputError(msg, hint=_HINT)
    bad = [w for w in words[1:] if not _WORD.fullmatch(w)]
    if bad:
        msg = f"--entry argument {bad[0]!r} holds a character that would need quoting in sh"
        raise InputError(msg, hint="use letters, digits and . _ + , : = @ % / - in --entry")
    entry = " ".join(words)
    if len(entry.encode()) > ENTRY_WIDTH:
        msg = f"--entry is {len(entry.encode())} bytes long, at most {ENTRY_WIDTH} fit the header"
        raise InputError(msg, hint="point --entry at a console script that holds the options")
    return entry


def console_scripts(prefix: Path) -> list[str]:
    """The Python scripts of the environment's `bin/` (console scripts, pip, ...), sorted."""
    found = []
    folder = prefix / "bin"
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not path.is_file() or path.is_symlink():
            continue
        with path.open("rb") as stream:
            head = stream.read(512)
        if head.startswith(b"#!") and b"bin/python" in head and path.name != "portenv-relocate":
            found.append(path.name)
    return found


def check_entry(prefix: Path, entry: str) -> None:
    """The entry's command is an executable file of the sealed environment's `bin/`."""
    name = entry.split()[0]
    path = prefix / "bin" / name
    if path.is_file() and path.stat().st_mode & 0o111:
        return
    scripts = console_scripts(prefix)
    have = ", ".join(scripts[:12]) + (f" and {len(scripts) - 12} more" if len(scripts) > 12 else "")
    msg = f"--entry {name}: the environment's bin/ has no command {name}"
    hint = f"its console scripts: {have}; or --entry python" if scripts else "try --entry python"
    raise InputError(msg, hint=hint)

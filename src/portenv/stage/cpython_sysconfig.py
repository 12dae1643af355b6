"""Make the build-configuration files of a copied CPython name wherever the copy now lives."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from portenv.errors import StageError

__all__ = [
    "KEEP_ABSOLUTE",
    "prefix_pattern",
    "relocate_config_script",
    "relocate_pkgconfig",
    "relocate_sysconfigdata",
    "sysconfigdata_source",
]

KEEP_ABSOLUTE = frozenset({"TZPATH", "CONFIG_ARGS"})
"""Variables left as they are: the target's time zone data is the system's (/usr/share/zoneinfo,
even for a python configured with --prefix=/usr), and CONFIG_ARGS records how it was built."""
_HEADER = """\
# system configuration generated and used by the sysconfig module
# Made portable by portenv: paths under the build prefix {prefix!r} follow sys.base_prefix,
# so sysconfig reports wherever this installation has been unpacked (also from a venv).
import sys as _sys

_prefix = _sys.base_prefix
"""


def prefix_pattern(prefix: str) -> re.Pattern[str]:
    """Occurrences of ``prefix`` as a whole path, also right after ``-I`` / ``-L``.

    >>> bool(prefix_pattern("/usr").search("-I/usr/include")), bool(
    ...     prefix_pattern("/usr").search("/build/usr/include"))
    (True, False)
    """
    before = r"(?:(?<=-[IL])|(?<![\w.~/+-]))"
    return re.compile(before + re.escape(prefix.rstrip("/")) + r"(?=/|$|[^\w.~+-])")


def _expression(value: str, pattern: re.Pattern[str]) -> str:
    """``'-L/x/lib'`` -> ``'-L' + _prefix + '/lib'`` (the source of a Python expression)."""
    pieces = pattern.split(value)
    if len(pieces) == 1:
        return repr(value)
    parts: list[str] = []
    for index, piece in enumerate(pieces):
        if index:
            parts.append("_prefix")
        if piece:
            parts.append(repr(piece))
    return " + ".join(parts)


def build_time_vars(source: str, path: Path) -> dict[str, Any]:
    """The ``build_time_vars`` literal of a _sysconfigdata module, read without running it."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "build_time_vars"
        ]:
            try:
                value = ast.literal_eval(node.value)
            except ValueError as exc:
                msg = f"unexpected content in {path}: build_time_vars is not a literal"
                raise StageError(msg, hint="this python's sysconfig data is not supported") from exc
            if isinstance(value, dict):
                return value
    msg = f"unexpected content in {path}: no build_time_vars"
    raise StageError(msg, hint="this python's sysconfig data is not supported")


def sysconfigdata_source(variables: dict[str, Any], build_prefix: str) -> str:
    """The text of a _sysconfigdata module whose prefix paths are computed at import time."""
    pattern = prefix_pattern(build_prefix)
    lines = [_HEADER.format(prefix=build_prefix), "build_time_vars = {"]
    for key, value in variables.items():
        keep = key in KEEP_ABSOLUTE or not isinstance(value, str)
        expression = repr(value) if keep else _expression(value, pattern)
        lines.append(f"    {key!r}: {expression},")
    lines += ["}", "", "del _sys, _prefix", ""]
    return "\n".join(lines)


def relocate_sysconfigdata(path: Path, build_prefix: str) -> bool:
    """Rewrite one _sysconfigdata_*.py in place; False if it held no build path."""
    source = path.read_text(encoding="utf-8")
    if not prefix_pattern(build_prefix).search(source):
        return False
    variables = build_time_vars(source, path)
    path.write_text(sysconfigdata_source(variables, build_prefix), encoding="utf-8")
    for stale in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        stale.unlink()
    return True


_CONFIG_FIXES = (
    # Upstream's installed_prefix() splits a prefix that holds a space; quote it.
    (
        'RESULT=$(dirname $(cd $(dirname "$1") && pwd -P))',
        'RESULT=$(dirname "$(cd "$(dirname "$1")" && pwd -P)")',
    ),
    ("echo $RESULT", 'echo "$RESULT"'),
)
_SED = re.compile(r'\$\(echo ("[^"\n]*") \| sed "s#\$prefix#\$prefix_real#"\)')


def relocate_config_script(path: Path, build_prefix: str) -> bool:
    """Make pythonX.Y-config use the prefix it computes from its own location everywhere.

    CPython's script already finds ``prefix_real`` from ``$0``, but still names the build
    prefix in ``prefix=`` and in the linker flags; those become ``${prefix_real}``, and the
    ``sed`` calls that mapped one onto the other (and broke on ``#`` in a path) go.
    """
    text = path.read_text(encoding="utf-8")
    if not text.startswith("#!/bin/sh") or "prefix_real=" not in text:
        return False
    text = prefix_pattern(build_prefix).sub(lambda _m: "${prefix_real}", text)
    text = _SED.sub(lambda m: m.group(1), text)
    for old, new in _CONFIG_FIXES:
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return True


def relocate_pkgconfig(path: Path, build_prefix: str) -> bool:
    """Point a lib/pkgconfig/*.pc at its own location (pkg-config expands ``${pcfiledir}``)."""
    text = path.read_text(encoding="utf-8")
    new = prefix_pattern(build_prefix).sub(lambda _m: "${pcfiledir}/../..", text)
    path.write_text(new, encoding="utf-8")
    return new != text

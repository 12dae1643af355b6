"""Make the build-configuration files of a copied CPython name wherever the copy now lives."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from portenv.errors import StageError

__all__ = [
    "KEEP_ABSOLUTE",
    "config_script_text",
    "pkgconfig_text",
    "prefix_pattern",
    "relocate_config_script",
    "relocate_pkgconfig",
    "relocate_sysconfigdata",
    "sysconfigdata_anywhere",
    "sysconfigdata_source",
    "sysconfigdata_text",
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
_HEADER_ANYWHERE = _HEADER.replace(" under the build prefix {prefix!r}", "")


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


def _portable_value(node: ast.expr, build_prefix: str) -> Any:
    """The value of a module made portable by sysconfigdata_source: literals, ``_prefix`` and
    ``+``, with ``_prefix`` standing for `build_prefix` (anything else is a ValueError)."""
    if isinstance(node, ast.Name) and node.id == "_prefix":
        return build_prefix
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _portable_value(node.left, build_prefix) + _portable_value(node.right, build_prefix)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {
            ast.literal_eval(key): _portable_value(value, build_prefix)
            for key, value in zip(node.keys, node.values, strict=True)
            if key is not None
        }
    return ast.literal_eval(node)


def build_time_vars(source: str, path: Path, build_prefix: str | None = None) -> dict[str, Any]:
    """The ``build_time_vars`` literal of a _sysconfigdata module, read without running it.

    With `build_prefix`, a module already made portable (sysconfigdata_source) is read too,
    its ``_prefix`` standing for `build_prefix`.
    """
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "build_time_vars"
        ]:
            try:
                if build_prefix is None:
                    value = ast.literal_eval(node.value)
                else:
                    value = _portable_value(node.value, build_prefix)
            except (ValueError, TypeError) as exc:
                msg = f"unexpected content in {path}: build_time_vars is not a literal"
                raise StageError(msg, hint="this python's sysconfig data is not supported") from exc
            if isinstance(value, dict):
                return value
    msg = f"unexpected content in {path}: no build_time_vars"
    raise StageError(msg, hint="this python's sysconfig data is not supported")


def sysconfigdata_source(
    variables: dict[str, Any], build_prefix: str, keep_absolute: frozenset[str] = KEEP_ABSOLUTE
) -> str:
    """The text of a _sysconfigdata module whose prefix paths are computed at import time
    (with no `keep_absolute`, every occurrence of the prefix is, even inside a word)."""
    pattern = prefix_pattern(build_prefix) if keep_absolute else re.compile(re.escape(build_prefix))
    header = _HEADER.format(prefix=build_prefix) if keep_absolute else _HEADER_ANYWHERE
    lines = [header, "build_time_vars = {"]
    for key, value in variables.items():
        keep = key in keep_absolute or not isinstance(value, str)
        expression = repr(value) if keep else _expression(value, pattern)
        lines.append(f"    {key!r}: {expression},")
    lines += ["}", "", "del _sys, _prefix", ""]
    return "\n".join(lines)


def sysconfigdata_text(source: str, build_prefix: str, path: Path) -> str | None:
    """The portable text of the _sysconfigdata module `source`; None if it holds no build path."""
    if not prefix_pattern(build_prefix).search(source):
        return None
    return sysconfigdata_source(build_time_vars(source, path), build_prefix)


def sysconfigdata_anywhere(source: str, build_prefix: str, path: Path) -> str:
    """A _sysconfigdata module (as built, or made portable already) that names `build_prefix`
    nowhere, not even in CONFIG_ARGS or TZPATH: for archives extracted where nothing can
    rewrite them (a plain archive), every such path follows sys.base_prefix."""
    variables = build_time_vars(source, path, build_prefix)
    return sysconfigdata_source(variables, build_prefix, keep_absolute=frozenset())


def relocate_sysconfigdata(path: Path, build_prefix: str) -> bool:
    """Rewrite one _sysconfigdata_*.py in place; False if it held no build path."""
    text = sysconfigdata_text(path.read_text(encoding="utf-8"), build_prefix, path)
    if text is None:
        return False
    path.write_text(text, encoding="utf-8")
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


def config_script_text(text: str, build_prefix: str) -> str | None:
    """pythonX.Y-config's text using the prefix it computes from its own location everywhere;
    None if it is not CPython's shell script.

    CPython's script already finds ``prefix_real`` from ``$0``, but still names the build
    prefix in ``prefix=`` and in the linker flags; those become ``${prefix_real}``, and the
    ``sed`` calls that mapped one onto the other (and broke on ``#`` in a path) go.
    """
    if not text.startswith("#!/bin/sh") or "prefix_real=" not in text:
        return None
    text = prefix_pattern(build_prefix).sub(lambda _m: "${prefix_real}", text)
    text = _SED.sub(lambda m: m.group(1), text)
    for old, new in _CONFIG_FIXES:
        text = text.replace(old, new)
    return text


def relocate_config_script(path: Path, build_prefix: str) -> bool:
    """Rewrite pythonX.Y-config in place (config_script_text); False if it is not CPython's."""
    text = config_script_text(path.read_text(encoding="utf-8"), build_prefix)
    if text is None:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def pkgconfig_text(text: str, build_prefix: str) -> str:
    """A .pc file in lib/pkgconfig that names its own location (``${pcfiledir}``)."""
    return prefix_pattern(build_prefix).sub(lambda _m: "${pcfiledir}/../..", text)


def relocate_pkgconfig(path: Path, build_prefix: str) -> bool:
    """Point a lib/pkgconfig/*.pc at its own location (pkg-config expands ``${pcfiledir}``)."""
    text = path.read_text(encoding="utf-8")
    new = pkgconfig_text(text, build_prefix)
    path.write_text(new, encoding="utf-8")
    return new != text

"""The types pixi's manifest keys must have, checked once when a manifest is read.

The meaning of a manifest (portenv.project.environments) reads tables, lists and strings; a
hand-edited or damaged file can hold an integer where a table belongs. Checking the shape
up front turns that into one `error:` naming the key, instead of a crash deep inside.
Unknown keys are left alone (pixi has many portenv does not read).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portenv.errors import ManifestError


def describe_type(value: object) -> str:
    """`a table`, `a list`, `a string`... for messages about a manifest value of the wrong type."""
    if isinstance(value, Mapping):
        return "a table"
    for kind, name in ((bool, "a boolean"), (str, "a string"), (list, "a list")):
        if isinstance(value, kind):
            return name
    return "a number" if isinstance(value, (int, float)) else type(value).__name__


__all__ = ["check_shape"]

Shape = type | dict[str, Any] | tuple[str, Any]
"""`dict`/`list`/`str`: that type; a dict: a table with those keys; ("each", s): a table of s."""

_DEPENDENCIES = {
    "dependencies": dict,
    "host-dependencies": dict,
    "build-dependencies": dict,
    "pypi-dependencies": dict,
}
_PYPI_OPTIONS = {"index-url": str, "extra-index-urls": ("list of", str)}
_FEATURE: dict[str, Shape] = {
    **_DEPENDENCIES,
    "system-requirements": dict,
    "channels": list,
    "platforms": ("list of", str),
    "target": ("each", _DEPENDENCIES),
    "pypi-options": _PYPI_OPTIONS,
}
_WORKSPACE = {"channels": list, "platforms": list}
_ENVIRONMENT = {"features": ("list of", str), "solve-group": str}
PIXI: dict[str, Shape] = {
    **_FEATURE,
    "workspace": _WORKSPACE,
    "project": _WORKSPACE,
    "feature": ("each", _FEATURE),
    "environments": ("each", ("list or", _ENVIRONMENT)),
}
PROJECT: dict[str, Shape] = {
    "dependencies": ("list of", str),
    "optional-dependencies": ("each", ("list of", str)),
    "requires-python": str,
}
_NAMES: dict[type, str] = {dict: "a table", list: "a list", str: "a string"}


def check_shape(data: Any, shape: Shape, where: str, path: Path) -> None:
    """Raise ManifestError naming the first key of `data` whose value has the wrong type."""
    if isinstance(shape, type):
        if not isinstance(data, Mapping if shape is dict else shape):
            _wrong(where, _NAMES[shape], data, path)
        return
    if isinstance(shape, dict):
        if not isinstance(data, Mapping):
            _wrong(where, "a table", data, path)
        for key, inner in shape.items():
            if key in data:
                check_shape(data[key], inner, _join(where, key), path)
        return
    _check_compound(data, shape, where, path)


def _check_compound(data: Any, shape: tuple[str, Any], where: str, path: Path) -> None:
    how, inner = shape
    if how == "each":
        if not isinstance(data, Mapping):
            _wrong(where, "a table", data, path)
        for key, value in data.items():
            check_shape(value, inner, _join(where, str(key)), path)
    elif how == "list of":
        if not isinstance(data, list):
            _wrong(where, "a list", data, path)
        for index, value in enumerate(data):
            check_shape(value, inner, f"{where}[{index}]", path)
    else:  # "list or": a list of names, else the given table shape
        check_shape(data, ("list of", str) if isinstance(data, list) else inner, where, path)


def _join(where: str, key: str) -> str:
    """A dotted key path for a message: odd keys quoted, long ones cut, always one line."""
    shown = key if key.isprintable() and key and len(key) <= 60 else repr(key[:60])
    return f"{where}.{shown}" if where else shown


def _wrong(where: str, expected: str, found: Any, path: Path) -> None:
    msg = f"{path.name}: {where or 'the manifest'} must be {expected}, not {describe_type(found)}"
    raise ManifestError(msg, hint=f"fix {where or 'the file'} in {path}")

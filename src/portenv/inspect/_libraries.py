"""The system libraries an environment carries from its build machine, as `.portenv/` records them.

Two records may say it: `.portenv/bundled.json` (``{"format": 1, "bundled": [{name, path,
source, needed_by, size}], "left_to_target": [{name, needed_by, reason}]}``) and entries of
kind ``library`` in `.portenv/packages.json`. Both are read; each library is shown once (as
bundled.json names it, when both do). An environment with neither has no bundled libraries to
show: nothing is guessed from the files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from portenv.inspect._model import Library
from portenv.stage.bundle import BUNDLED_JSON

__all__ = ["read_libraries"]


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _text(value: object) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def _number(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _library(entry: Mapping[str, object], *, bundled: bool = True) -> Library | None:
    name = _text(entry.get("name"))
    if name is None:
        return None
    return Library(
        name=name,
        path=_text(entry.get("path")),
        source=_text(entry.get("source")),
        needed_by=_strings(entry.get("needed_by")),
        size=_number(entry.get("size")) or _number(entry.get("installed_size")),
        bundled=bundled,
        reason=None if bundled else _text(entry.get("reason")),
    )


def _bundled_record(data: bytes | None) -> list[Library]:
    try:
        record = json.loads(data) if data is not None else {}
    except ValueError:
        return []
    if not isinstance(record, dict):
        return []
    found: list[Library | None] = []
    for key, bundled in (("bundled", True), ("left_to_target", False)):
        entries = record.get(key)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                found.append(_library(entry, bundled=bundled))
    return [library for library in found if library is not None]


def read_libraries(
    records: Mapping[str, bytes], inventory: Sequence[Mapping[str, object]]
) -> tuple[Library, ...]:
    """The bundled libraries (and those left to the target) that the records name."""
    found = _bundled_record(records.get(BUNDLED_JSON))
    found += [
        library
        for entry in inventory
        if entry.get("kind") == "library"
        for library in [_library(entry)]
        if library is not None
    ]
    unique: dict[tuple[str, bool], Library] = {}
    for library in found:
        unique.setdefault((library.name, library.bundled), library)
    return tuple(sorted(unique.values(), key=lambda lib: (not lib.bundled, lib.name)))

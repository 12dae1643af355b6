"""``portenv inspect --json``: the Report as one JSON document, schema in docs/inspect.md.

`SCHEMA_VERSION` changes when a key changes meaning or goes away; new keys may be added
without it, so readers ignore keys they do not know. The HTML report embeds this same
document, so the two never disagree.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from portenv.inspect._model import Node, Report
from portenv.inspect._owners import GROUP_NAMES

__all__ = ["SCHEMA", "SCHEMA_VERSION", "report_json"]

SCHEMA = "portenv-inspect"
SCHEMA_VERSION = 1


def _node(node: Node) -> dict[str, Any]:
    data: dict[str, Any] = {"name": node.name, "kind": node.kind, "size": node.size}
    data["files"] = node.files
    if node.key is not None:
        data["key"] = node.key
    if node.children:
        data["children"] = [_node(child) for child in node.children]
    return data


def _owner(report: Report, key: str | None) -> dict[str, str | None]:
    if key in GROUP_NAMES:
        return {"package": None, "group": GROUP_NAMES[key]}
    names = {p.key: p.name for p in report.packages}
    return {"package": names.get(key or "", key), "group": None}


def report_json(report: Report) -> dict[str, Any]:
    """The document `--json` prints (and `--html` embeds)."""
    archive = asdict(report.archive) if report.archive is not None else None
    groups = [
        {"key": node.key, "name": node.name, "size": node.size, "files": node.files}
        for node in report.tree.children
        if node.kind == "group"
    ]
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "input": {"path": report.path, "kind": report.kind},
        "archive": archive,
        "platform": report.platform,
        "python": report.python,
        "glibc": {
            "floor": report.glibc.floor,
            "recorded": report.glibc.recorded,
            "files": [{"version": v, "path": p} for v, p in report.glibc.files],
        },
        "size": report.size,
        "files": report.files,
        "links": report.links,
        "packages": [asdict(package) for package in report.packages],
        "groups": groups,
        "largest_files": [
            {"path": row.path, "size": row.size, **_owner(report, row.owner)}
            for row in report.largest
        ],
        "libraries": [
            {**asdict(library), "needed_by": list(library.needed_by)}
            for library in report.libraries
        ],
        "tree": _node(report.tree),
    }

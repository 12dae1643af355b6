"""Hostile edits of real pixi.lock and manifest files, drawn by hypothesis.

A mutation is drawn in two halves: a structural one on the parsed document (YAML for the
lock, TOML for the manifest: delete, retype or rename a key, duplicate a list item, a wrong
lock version, a huge number, a bad URL, a bad hash, an unknown platform), and then,
sometimes, a byte-level one on the written file (truncation, non-UTF-8 bytes, a duplicated
or deleted line). Each returns the new bytes and a short description for failure messages.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import tomlkit
import yaml
from hypothesis import strategies as st

__all__ = ["mutate_bytes", "mutate_lock", "mutate_manifest"]

Path_ = tuple[Any, ...]

WEIRD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    10**30,
    -(2**63),
    1.5e308,
    "",
    " ",
    "é\u202e🐍",
    "x" * 5000,
    [],
    {},
    [None],
    {"": None},
    "0.0.0.0.0.0.0.0",
    "\x00",
]
BAD_URLS = [
    "",
    "http://",
    "https://[::1",
    "ftp://example.invalid/p-1.0-0.conda",
    "file:///nonexistent/p-1.0-0.conda",
    "../../../../etc/passwd",
    "/",
    "not a url",
    "https://example.invalid/" + "a" * 4000 + ".conda",
    "http://127.0.0.1:0/p-1.0-0.conda",
    "https://example.invalid/p.whl#sha256=zz",
    "git+https://example.invalid/r.git",
    "./missing.whl",
]
BAD_HASHES = ["", "zz" * 32, "0" * 63, "0" * 65, "A" * 64, 12345, "sha256:" + "0" * 64]
BAD_PLATFORMS = ["linux-sparc", "", "win-64", "osx-arm64", "linux-64 ", "noarch", "LINUX-64", "é"]
BAD_VERSIONS = [-1, 0, 1, 3, 8, 99, 10**20, "7", "v6", None, 6.5]
SUBDIR_LIKE = ("linux-", "osx-", "win-", "noarch", "emscripten-")


def _nodes(tree: Any, path: Path_ = ()) -> list[Path_]:
    """Every path to a value in a document (dict keys and list indices), root excluded."""
    found: list[Path_] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            found.append((*path, key))
            found.extend(_nodes(value, (*path, key)))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found.append((*path, index))
            found.extend(_nodes(value, (*path, index)))
    return found


def _get(tree: Any, path: Path_) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def _strings(tree: Any, keep: Callable[[Path_, str], bool]) -> list[Path_]:
    return [p for p in _nodes(tree) if isinstance(_get(tree, p), str) and keep(p, _get(tree, p))]


def _is_url(path: Path_, value: str) -> bool:
    return "://" in value or value.endswith((".conda", ".tar.bz2", ".whl", ".tar.gz"))


def _is_hash(path: Path_, value: str) -> bool:
    return bool(path) and path[-1] in ("sha256", "md5")


def _is_platform(path: Path_, value: str) -> bool:
    return value.startswith(SUBDIR_LIKE) and "/" not in value


class _Parsed:
    """A seed document parsed once, with the paths each kind of edit can target."""

    def __init__(self, tree: Any) -> None:
        self.tree = tree
        nodes = _nodes(tree)
        self.targets = {
            "url": _strings(tree, _is_url),
            "hash": [p for p in nodes if p[-1] in ("sha256", "md5")],
            "platform": _strings(tree, _is_platform) + _platform_keys(tree),
            "duplicate": [p for p in nodes if isinstance(p[-1], int)],
            "any": nodes,
        }


@functools.cache
def _parsed(text: bytes, kind: str) -> _Parsed:
    if kind == "yaml":
        return _Parsed(yaml.load(text, Loader=yaml.CSafeLoader))
    return _Parsed(tomlkit.parse(text.decode()).unwrap())


def _structural(draw: st.DrawFn, parsed: _Parsed, *, none_ok: bool) -> tuple[Any, str]:
    """One structural edit of a parsed document (a deep copy); None where TOML has none."""
    tree = copy.deepcopy(parsed.tree)
    weird = st.sampled_from([v for v in WEIRD_VALUES if none_ok or not _has_none(v)])
    kinds = ["delete", "retype", "rename", "duplicate", "version", "url", "hash", "platform"]
    kind = draw(st.sampled_from(kinds))
    targets = parsed.targets.get(kind, parsed.targets["any"])
    if kind == "version":
        value = draw(st.sampled_from([v for v in BAD_VERSIONS if none_ok or v is not None]))
        tree["version"] = value
        return tree, f"version = {value!r}"
    if not targets:
        return tree, f"{kind}: nothing to edit"
    path = draw(st.sampled_from(targets))
    parent, last = _get(tree, path[:-1]), path[-1]
    if kind == "delete":
        del parent[last]
    elif kind == "duplicate":
        parent.insert(last, copy.deepcopy(parent[last]))
    elif kind == "rename" and isinstance(parent, dict):
        new_key = draw(st.sampled_from(["", " ", "linux-sparc", "default", "é", "x" * 300]))
        parent[new_key] = parent.pop(last)
        return tree, f"rename {path!r} -> {new_key!r}"
    elif kind == "rename" or kind == "retype":
        parent[last] = draw(weird)
    elif kind == "url":
        parent[last] = draw(st.sampled_from(BAD_URLS))
    elif kind == "hash":
        parent[last] = draw(st.sampled_from(BAD_HASHES))
    elif isinstance(parent[last], str):  # a platform value
        parent[last] = draw(st.sampled_from(BAD_PLATFORMS))
    else:  # a platform key: the table moves to an unknown platform
        parent[draw(st.sampled_from(BAD_PLATFORMS))] = parent.pop(last)
    return tree, f"{kind} at {path!r}"


def _platform_keys(tree: Any) -> list[Path_]:
    """Dict keys that name platforms (`linux-64:` under packages, `[target.linux-64]`)."""
    return [
        p
        for p in _nodes(tree)
        if isinstance(p[-1], str) and _is_platform(p, p[-1]) and not isinstance(_get(tree, p), str)
    ]


def _has_none(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list):
        return any(_has_none(v) for v in value)
    if isinstance(value, dict):
        return any(_has_none(v) for v in value.values())
    return False


@st.composite
def mutate_bytes(draw: st.DrawFn, data: bytes) -> tuple[bytes, str]:
    """A byte-level edit: truncation, foreign bytes, a duplicated or a deleted line."""
    kind = draw(st.sampled_from(["truncate", "insert", "dup-line", "drop-line"]))
    at = draw(st.integers(0, max(0, len(data) - 1)))
    if kind == "truncate":
        return data[:at], f"truncated at byte {at}"
    if kind == "insert":
        blob = draw(st.sampled_from([b"\xff\xfe", b"\x00", b"\xc3\x28", b"\t\n:", b"'\"[{"]))
        return data[:at] + blob + data[at:], f"inserted {blob!r} at byte {at}"
    lines = data.splitlines(keepends=True)
    index = draw(st.integers(0, max(0, len(lines) - 1)))
    if kind == "dup-line":
        lines.insert(index, lines[index] if lines else b"\n")
    elif lines:
        del lines[index]
    return b"".join(lines), f"{kind} {index}"


@st.composite
def mutate_lock(draw: st.DrawFn, text: bytes) -> tuple[bytes, str]:
    """A pixi.lock edited structurally (YAML), then perhaps byte-wise."""
    edited, what = _structural(draw, _parsed(text, "yaml"), none_ok=True)
    dumped = yaml.dump(edited, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True)
    data = dumped.encode()
    if draw(st.booleans()):
        data, more = draw(mutate_bytes(data))
        what += f"; {more}"
    return data, what


@st.composite
def mutate_manifest(draw: st.DrawFn, text: bytes) -> tuple[bytes, str]:
    """A pixi.toml / pyproject.toml edited structurally (TOML), then perhaps byte-wise."""
    edited, what = _structural(draw, _parsed(text, "toml"), none_ok=False)
    data = tomlkit.dumps(edited).encode()
    if draw(st.booleans()):
        data, more = draw(mutate_bytes(data))
        what += f"; {more}"
    return data, what

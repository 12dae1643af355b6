"""The size map: packages, then the folders and files inside each, small boxes lumped together.

A box smaller than a fraction of the whole environment (`SMALLEST`) joins its siblings' rest,
and a folder holding only one folder is shown as one box (``lib/python3.12/site-packages``),
so the map of an environment of 100,000 files stays a few hundred boxes that can be read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from portenv.inspect._model import Node

__all__ = ["SMALLEST", "size_map"]

SMALLEST = 0.002
"""Boxes under this share of the environment are lumped into their folder's rest."""
_DEPTH = 8


@dataclass
class _Folder:
    size: int = 0
    files: int = 0
    folders: dict[str, _Folder] = field(default_factory=dict)
    leaves: dict[str, int] = field(default_factory=dict)

    def add(self, parts: list[str], size: int) -> None:
        self.size += size
        self.files += 1
        if len(parts) == 1:
            self.leaves[parts[0]] = self.leaves.get(parts[0], 0) + size
        else:
            self.folders.setdefault(parts[0], _Folder()).add(parts[1:], size)


def _collapsed(name: str, folder: _Folder) -> tuple[str, _Folder]:
    while len(folder.folders) == 1 and not folder.leaves:
        ((child, inner),) = folder.folders.items()
        name, folder = f"{name}/{child}", inner
    return name, folder


def _children(folder: _Folder, smallest: float, depth: int) -> tuple[Node, ...]:
    nodes = [
        _folder_node(name, child, smallest, depth + 1)
        for name, child in folder.folders.items()
        if child.size >= smallest
    ]
    nodes += [
        Node(name, "file", size, 1) for name, size in folder.leaves.items() if size >= smallest
    ]
    nodes.sort(key=lambda node: (-node.size, node.name))
    size, files = sum(n.size for n in nodes), sum(n.files for n in nodes)
    if files < folder.files:
        rest = folder.files - files
        label = f"{rest} smaller file{'s' if rest > 1 else ''}"
        nodes.append(Node(label, "rest", folder.size - size, rest))
    return tuple(nodes)


def _folder_node(name: str, folder: _Folder, smallest: float, depth: int) -> Node:
    name, folder = _collapsed(name, folder)
    children = _children(folder, smallest, depth) if depth < _DEPTH else ()
    return Node(name, "folder", folder.size, folder.files, children)


def size_map(
    sizes: Mapping[str, int],
    owners: Mapping[str, str],
    names: Mapping[str, tuple[str, str]],
) -> Node:
    """The root box: one box per owner (package or group), largest first.

    `owners` maps every path of `sizes` to a key of `names` (key -> (name, node kind)).
    """
    roots: dict[str, _Folder] = {}
    for path, size in sizes.items():
        roots.setdefault(owners[path], _Folder()).add(path.split("/"), size)
    total = sum(sizes.values())
    smallest = max(total * SMALLEST, 1)
    boxes = []
    for key, folder in roots.items():
        name, kind = names[key]
        boxes.append(
            Node(name, kind, folder.size, folder.files, _children(folder, smallest, 0), key)
        )
    boxes.sort(key=lambda node: (-node.size, node.name))
    return Node("", "root", total, len(sizes), tuple(boxes))

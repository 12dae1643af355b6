"""Read and edit pixi.toml or a pyproject.toml's [tool.pixi] with tomlkit, keeping the rest.

Edits go through tomlkit's document so comments, key order, quoting and unknown keys stay
as the user (or pixi) wrote them: only the edited lines change. Nothing is written until
`Manifest.write`, so a failed solve leaves the file as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from tomlkit.container import Container
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Array, Table, Whitespace

from portenv.errors import ManifestError
from portenv.project.shape import PIXI, PROJECT, check_shape, describe_type

__all__ = [
    "DepKind",
    "Manifest",
    "Where",
    "describe_type",
    "find_manifest",
    "pixi_table",
    "read_manifest",
    "write_text_atomic",
]

DepKind = Literal["conda", "pypi"]
_TABLE = {"conda": "dependencies", "pypi": "pypi-dependencies"}


@dataclass(frozen=True)
class Where:
    """Which table a dependency lives in: a feature (None = default) and a target selector."""

    feature: str | None = None
    target: str | None = None

    def describe(self) -> str:
        """``the default feature`` / ``feature dev (target linux-64)``, for messages."""
        text = f"feature {self.feature}" if self.feature else "the default feature"
        return f"{text} (target {self.target})" if self.target else text


def find_manifest(path: Path) -> Path:
    """The manifest of a project: the file given, else in a folder its pixi.toml, else its
    pyproject.toml, which must have [tool.pixi]. Every reader of a project starts here."""
    if not path.exists():
        msg = f"project not found: {path}"
        raise ManifestError(msg, hint="pass a folder holding pixi.toml, or the manifest file")
    if not path.is_dir():
        return _check_manifest(path)
    pixi_toml = path / "pixi.toml"
    if pixi_toml.is_file():
        return pixi_toml
    pyproject = path / "pyproject.toml"
    if pyproject.is_file():
        return _check_manifest(pyproject)
    msg = f"no pixi.toml or pyproject.toml in {path}"
    raise ManifestError(msg, hint="run `portenv init` there, or pass the manifest's path")


def read_manifest(path: Path) -> tuple[str, tomlkit.TOMLDocument]:
    """A manifest's text and TOML document; unreadable or invalid files are a ManifestError."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        msg = f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded)"
        raise ManifestError(msg, hint="save the file as UTF-8") from exc
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror or exc}"
        raise ManifestError(msg, hint="check that the file is readable") from exc
    try:
        return text, tomlkit.parse(text)
    except TOMLKitError as exc:
        msg = f"{path} is not valid TOML: {_one_line(str(exc))}"
        raise ManifestError(msg, hint="fix the syntax error it names") from exc


def _one_line(text: str) -> str:
    return " ".join(text.split())


def pixi_table(document: Mapping[str, Any], path: Path) -> Mapping[str, Any] | None:
    """pixi's keys: the whole pixi.toml, or [tool.pixi] of a pyproject.toml (None if absent)."""
    if path.name != "pyproject.toml":
        return document
    tool = document.get("tool", {})
    found = tool.get("pixi") if isinstance(tool, Mapping) else None
    if found is not None and not isinstance(found, Mapping):
        msg = f"{path}: tool.pixi must be a table, not {describe_type(found)}"
        raise ManifestError(msg, hint="write it as a [tool.pixi] section")
    return found


def _check_manifest(path: Path) -> Path:
    if path.name == "pyproject.toml":
        if pixi_table(read_manifest(path)[1], path) is None:
            msg = f"{path} has no [tool.pixi] table, so it is not a pixi manifest"
            raise ManifestError(msg, hint="add [tool.pixi] (see `portenv init --pyproject`)")
        return path
    if path.suffix == ".toml":
        return path
    msg = f"{path} is not a pixi manifest"
    raise ManifestError(msg, hint="pass pixi.toml, a pyproject.toml with [tool.pixi], or a folder")


@dataclass
class Manifest:
    """A parsed manifest and the edits made to it in memory."""

    path: Path
    document: tomlkit.TOMLDocument
    original: str
    _created: list[Table] = field(default_factory=list)

    @classmethod
    def from_path(cls, project: Path) -> Manifest:
        """Load the manifest of a project folder (or the manifest file itself)."""
        path = find_manifest(project)
        text, document = read_manifest(path)
        manifest = cls(path, document, text)
        check_shape(manifest.data(), PIXI, "tool.pixi" if manifest.is_pyproject else "", path)
        check_shape(manifest.project_table(), PROJECT, "project", path)
        return manifest

    @property
    def is_pyproject(self) -> bool:
        """pyproject.toml keeps pixi's tables under [tool.pixi]."""
        return self.path.name == "pyproject.toml"

    @property
    def root(self) -> Path:
        """The workspace folder: relative paths in the manifest and lock start here."""
        return self.path.parent.resolve()

    def pixi(self) -> Container | Table:
        """The table holding pixi's keys (the document itself for pixi.toml)."""
        if self.is_pyproject:
            pixi = self.document["tool"]["pixi"]  # a mapping: from_path checked it
            if not isinstance(pixi, Table):
                msg = f"{self.path}: tool.pixi is an inline table"
                raise ManifestError(msg, hint="write it as a [tool.pixi] section")
            return pixi
        return self.document

    def data(self) -> dict[str, Any]:
        """pixi's keys as plain Python values."""
        unwrapped: dict[str, Any] = self.pixi().unwrap()
        return unwrapped

    def project_table(self) -> dict[str, Any]:
        """pyproject's [project] table as plain values (empty for pixi.toml)."""
        if not self.is_pyproject:
            return {}
        project = self.document.unwrap().get("project", {})
        if not isinstance(project, dict):
            msg = f"{self.path.name}: project must be a table, not {describe_type(project)}"
            raise ManifestError(msg, hint=f"fix [project] in {self.path}")
        return project

    def workspace(self) -> dict[str, Any]:
        """[workspace] (or the older [project]) of pixi's keys."""
        data = self.data()
        found: dict[str, Any] = data.get("workspace", data.get("project", {}))
        return found

    def name(self) -> str:
        """The workspace name, falling back as pixi does to [project].name, then the folder."""
        name = self.workspace().get("name") or self.project_table().get("name")
        return str(name or self.root.name)

    def dependencies(self, kind: DepKind, where: Where = Where()) -> dict[str, Any]:
        """One dependency table as plain values (pyproject's PEP 508 list not included)."""
        table = self._table(where, kind, create=False)
        return {} if table is None else dict(table.unwrap())

    def set_dependency(self, kind: DepKind, name: str, value: Any, where: Where = Where()) -> None:
        """Add or replace one dependency, keeping an existing key's spelling and position."""
        if kind == "pypi" and self._uses_project_dependencies(name, where, value):
            self._set_project_dependency(name, value)
            return
        table = self._table(where, kind, create=True)
        assert table is not None
        key = _existing_key(table, name, kind) or name
        table[key] = value

    def remove_dependency(self, kind: DepKind, name: str, where: Where = Where()) -> bool:
        """Remove one dependency; False when the table does not have it."""
        removed = False
        if kind == "pypi" and self.is_pyproject and where == Where():
            removed = self._remove_project_dependency(name)
        table = self._table(where, kind, create=False)
        key = _existing_key(table, name, kind) if table is not None else None
        if table is not None and key is not None:
            del table[key]
            removed = True
        return removed

    def dumps(self) -> str:
        """The edited manifest; untouched parts are byte-for-byte what was read."""
        for table in self._created:
            _end_with_blank_line(table)
        text = tomlkit.dumps(self.document)
        if text.endswith("\n\n") and not self.original.endswith("\n\n"):
            text = text.rstrip("\n") + "\n"
        return text

    @property
    def changed(self) -> bool:
        """Whether the edits changed the text."""
        return self.dumps() != self.original

    def write(self) -> None:
        """Replace the file atomically (a crash leaves the old or the new manifest)."""
        write_text_atomic(self.path, self.dumps())

    def restore(self) -> None:
        """Put back the text the manifest had when it was read."""
        write_text_atomic(self.path, self.original)

    # --- tables -----------------------------------------------------------------------

    def _table(self, where: Where, kind: DepKind, *, create: bool) -> Table | None:
        parent: Container | Table = self.pixi()
        path: list[str] = []
        if where.feature:
            path += ["feature", where.feature]
        if where.target:
            path += ["target", where.target]
        for key in path:
            child = _child(parent, key, create=create, created=self._created, leaf=False)
            if child is None:
                return None
            parent = child
        return _child(parent, _TABLE[kind], create=create, created=self._created, leaf=True)

    def _uses_project_dependencies(self, name: str, where: Where, value: Any) -> bool:
        """pixi adds a pyproject's default PyPI dependencies to [project].dependencies
        (paths, URLs and git sources stay in [tool.pixi.pypi-dependencies])."""
        if not self.is_pyproject or where != Where():
            return False
        if isinstance(value, Mapping) and not set(value) <= {"version", "extras"}:
            return False
        table = self._table(where, "pypi", create=False)
        return table is None or _existing_key(table, name, "pypi") is None

    def _project_dependencies(self) -> Array:
        project = self.document.setdefault("project", tomlkit.table())
        if "dependencies" not in project:
            project["dependencies"] = tomlkit.array()
        array: Array = project["dependencies"]
        return array

    def _set_project_dependency(self, name: str, value: Any) -> None:
        requirement = _requirement_line(name, value)
        array = self._project_dependencies()
        for index, item in enumerate(array):
            if _requirement_name(str(item)) == canonicalize_name(name):
                array[index] = str(requirement)
                return
        array.append(str(requirement))

    def _remove_project_dependency(self, name: str) -> bool:
        if "dependencies" not in self.document.get("project", {}):
            return False
        array = self._project_dependencies()
        for index, item in enumerate(array):
            if _requirement_name(str(item)) == canonicalize_name(name):
                del array[index]
                return True
        return False


def _child(
    parent: Container | Table, key: str, *, create: bool, created: list[Table], leaf: bool
) -> Table | None:
    """A sub-table, created (as a super table when it only holds tables) if asked."""
    if key in parent:
        found = parent[key]
        if not isinstance(found, Table):
            msg = f"manifest key {key!r} is not a table"
            raise ManifestError(msg, hint="write it as a [table] section")
        return found
    if not create:
        return None
    table = tomlkit.table(is_super_table=not leaf)
    parent[key] = table
    if leaf:
        created.append(table)
    return table


def _end_with_blank_line(table: Table) -> None:
    """A table portenv added ends with one blank line, so the next header stays apart."""
    body = table.value.body
    while body and isinstance(body[-1][1], Whitespace):
        body.pop()
    table.add(tomlkit.nl())


def _existing_key(table: Table | None, name: str, kind: DepKind) -> str | None:
    """The key spelling a table uses for `name` (PyPI names compare normalised)."""
    if table is None:
        return None
    for key in table:
        if key == name or (kind == "pypi" and canonicalize_name(key) == canonicalize_name(name)):
            return str(key)
    return None


def _requirement_line(name: str, value: Any) -> str:
    """A PEP 508 line for a pixi version string or ``{ version, extras }`` table."""
    extras = sorted(value.get("extras", ())) if isinstance(value, Mapping) else []
    version = str(value.get("version", "*")) if isinstance(value, Mapping) else str(value)
    spelled = f"{name}[{','.join(extras)}]" if extras else name
    return spelled if version.strip() in ("", "*") else f"{spelled}{version.strip()}"


def _requirement_name(text: str) -> str | None:
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return None


def write_text_atomic(path: Path, text: str) -> None:
    """Write next to `path` and rename over it, keeping the file's mode."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

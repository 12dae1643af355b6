"""`portenv init`: a new workspace in the layout `pixi init` writes, so pixi can take it over.

pixi.toml gets [workspace] (channels, name, platforms, version), an empty [tasks] and
[dependencies]; ``--pyproject`` puts the same under [tool.pixi.*] of a pyproject.toml. Like
pixi, init writes .gitignore and .gitattributes entries for `.pixi/` and `pixi.lock`. It
does not add pixi's editable self-dependency to a pyproject: `pack` refuses editable
installs, so a project that starts packable stays packable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomlkit
from tomlkit.items import Table

from portenv.errors import ManifestError
from portenv.platforms import host_subdir
from portenv.project.environments import DEFAULT_CHANNEL
from portenv.project.manifest import write_text_atomic

__all__ = ["InitRequest", "InitResult", "init"]

_GITIGNORE = "# pixi environments\n.pixi/*\n!.pixi/config.toml\n"
_GITATTRIBUTES = (
    "# SCM syntax highlighting & preventing 3-way merges\n"
    "pixi.lock merge=binary linguist-language=YAML linguist-generated=true\n"
)


@dataclass(frozen=True)
class InitRequest:
    """`portenv init [DIR] [-c CHANNEL]... [-p PLATFORM]... [--pyproject]`."""

    directory: Path
    channels: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    pyproject: bool = False
    name: str | None = None


@dataclass(frozen=True)
class InitResult:
    """The manifest that was written."""

    manifest: Path


def _workspace(request: InitRequest, name: str | None) -> Table:
    table = tomlkit.table()
    table["channels"] = list(request.channels or (DEFAULT_CHANNEL,))
    if name is not None:
        table["name"] = name
    table["platforms"] = list(request.platforms or (host_subdir(),))
    if name is not None:
        table["version"] = "0.1.0"
    return table


def _pixi_toml(request: InitRequest, name: str) -> str:
    document = tomlkit.document()
    document["workspace"] = _workspace(request, name)
    document["tasks"] = tomlkit.table()
    document["dependencies"] = tomlkit.table()
    return tomlkit.dumps(document)


def _pyproject(request: InitRequest, name: str, existing: str | None) -> str:
    document = tomlkit.parse(existing) if existing is not None else tomlkit.document()
    if existing is None:
        project = tomlkit.table()
        project["name"] = name
        project["version"] = "0.1.0"
        project["requires-python"] = ">= 3.11"
        project["dependencies"] = tomlkit.array()
        document["project"] = project
    tool = document.setdefault("tool", tomlkit.table(is_super_table=True))
    if "pixi" in tool:
        msg = "pyproject.toml already has a [tool.pixi] table"
        raise ManifestError(msg, hint="edit it with `portenv add` and `portenv remove`")
    pixi = tomlkit.table(is_super_table=True)
    pixi["workspace"] = _workspace(request, None)
    pixi["tasks"] = tomlkit.table()
    tool["pixi"] = pixi
    return tomlkit.dumps(document)


def _append_missing(path: Path, text: str) -> None:
    """Create a dot-file, or add the lines it lacks (a user's own entries stay)."""
    if not path.exists():
        path.write_text(text, encoding="utf-8")
        return
    current = path.read_text(encoding="utf-8")
    missing = [line for line in text.splitlines() if line and line not in current.splitlines()]
    if missing:
        separator = "" if current.endswith("\n") or not current else "\n"
        path.write_text(current + separator + "\n".join(missing) + "\n", encoding="utf-8")


def init(request: InitRequest) -> InitResult:
    """Create a pixi workspace in `request.directory` (created if missing)."""
    folder = request.directory.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    name = request.name or folder.name
    if (folder / "pixi.toml").exists():
        msg = f"{folder / 'pixi.toml'} already exists"
        raise ManifestError(msg, hint="edit it with `portenv add` and `portenv remove`")
    if request.pyproject:
        manifest = folder / "pyproject.toml"
        existing = manifest.read_text(encoding="utf-8") if manifest.exists() else None
        write_text_atomic(manifest, _pyproject(request, name, existing))
    else:
        manifest = folder / "pixi.toml"
        write_text_atomic(manifest, _pixi_toml(request, name))
    _append_missing(folder / ".gitignore", _GITIGNORE)
    _append_missing(folder / ".gitattributes", _GITATTRIBUTES)
    return InitResult(manifest)

"""Requirements-file lines with their local paths made absolute, and the hashes they pin.

uv takes the paths of a requirements file (`.`, `./dir`, `-e ../lib`, `./x.whl`) relative to
the current folder, as pip does; portenv takes them relative to the file that names them (and
`--with` lines relative to the current folder), so the same file packs the same way from
anywhere. Each file is copied into a scratch folder with every local path made absolute
(included `-r` files too), after checking that the path exists and, for a folder, that it is a
Python project: uv's own messages for these cases name no file and suggest the wrong fix.
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from portenv.errors import InputError

__all__ = ["AbsoluteRequirements", "absolute_requirements", "pinned_hashes"]

_HASH = re.compile(r"--hash[=\s]+sha256:([0-9a-fA-F]{64})")
_FRAGMENT = re.compile(r"#(?:.*&)?sha256=([0-9a-fA-F]{64})")
_COMMENT = re.compile(r"(^|\s+)#.*$")
_OPTION = re.compile(r"^(-[a-zA-Z]|--[a-z][a-z-]*)(?:\s*=\s*|\s+|$)(\S*)(.*)$")
_DIRECT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*@\s*(\S+)(.*)$")
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
_ARCHIVES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz")
_PATH_OPTIONS = {
    "-r": "requirement",
    "--requirement": "requirement",
    "-c": "constraint",
    "--constraint": "constraint",
    "-e": "editable",
    "--editable": "editable",
    "-f": "find-links",
    "--find-links": "find-links",
}


@dataclass
class AbsoluteRequirements:
    """The copies to hand to uv, the sha256 pins they carry, and how to name them in messages."""

    files: list[Path] = field(default_factory=list)
    pins: dict[str, set[str]] = field(default_factory=dict)
    originals: dict[str, str] = field(default_factory=dict)
    """Copy path -> what the user named (a file, or `--with`), to translate uv's messages."""

    def pin(self, name: str, hashes: Sequence[str]) -> None:
        """Allow these sha256 hashes for the distribution `name`."""
        if hashes:
            self.pins.setdefault(canonicalize_name(name), set()).update(h.lower() for h in hashes)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) with continuations joined and comments dropped, blank lines left out."""
    lines: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        line = _COMMENT.sub("", pending + raw).strip()
        pending = ""
        if line:
            lines.append((start, line))
    if pending.strip():
        lines.append((start, _COMMENT.sub("", pending).strip()))
    return lines


def pinned_hashes(requirements: Path) -> dict[str, set[str]]:
    """The sha256 hashes a file allows per distribution: `--hash=` options and `#sha256=`."""
    found = AbsoluteRequirements()
    for _number, line in logical_lines(requirements.read_text(encoding="utf-8")):
        found.pin(*_line_pins(line))
    return found.pins


def _line_pins(line: str) -> tuple[str, list[str]]:
    """The distribution a requirement line names and the hashes it gives (none: no pin)."""
    name = None if line.startswith("-") else _pinned_name(line)
    if name is None:
        return "", []
    direct = _DIRECT.match(line)
    location = direct.group(3) if direct else line.split()[0]
    return name, _HASH.findall(line) + _FRAGMENT.findall(location)


def _pinned_name(line: str) -> str | None:
    """`name` of `name...` and `name @ url`, or the name in a wheel or sdist file's name."""
    direct = _DIRECT.match(line)
    if direct:
        return direct.group(1)
    first = line.split()[0]
    if _is_local(first) or "://" in first:
        return _archive_name(first.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1])
    match = _NAME.match(line)
    return match.group(1) if match else None


def _archive_name(file_name: str) -> str | None:
    try:
        if file_name.endswith(".whl"):
            return str(parse_wheel_filename(file_name)[0])
        return str(parse_sdist_filename(file_name)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def _is_local(token: str) -> bool:
    """Whether a bare requirement is a local path, as pip decides: a path or an archive name."""
    if "://" in token or token.startswith(("file:", "$")):
        return False
    return token.startswith((".", "/", "~")) or "/" in token or token.endswith(_ARCHIVES)


@dataclass(frozen=True)
class _Where:
    """Where a line comes from, for messages, and the folder its relative paths start from."""

    label: str
    base: Path
    relative_to: str


def _local_path(token: str, where: _Where, *, project: bool) -> str:
    """`token` made absolute after checking it exists (and, for a folder, is a project)."""
    extras = ""
    match = re.fullmatch(r"(.*?)(\[[^\]]*\])", token)
    if match:
        token, extras = match.group(1), match.group(2)
    path = (where.base / Path(token).expanduser()).resolve()
    if not path.exists():
        msg = f"{where.label}: local path does not exist: {path}"
        raise InputError(msg, hint=f"fix the path; it is taken relative to {where.relative_to}")
    is_project = (path / "pyproject.toml").is_file() or (path / "setup.py").is_file()
    if project and path.is_dir() and not is_project:
        msg = f"{where.label}: {path} is not a Python project (no pyproject.toml or setup.py)"
        raise InputError(msg, hint="name the folder that holds the project's pyproject.toml")
    return f"{path}{extras}"


def _option_line(line: str, where: _Where, out: AbsoluteRequirements, scratch: Path) -> str:
    match = _OPTION.match(line)
    if match is None or match.group(1) not in _PATH_OPTIONS or not match.group(2):
        return line
    option, value, rest = match.groups()
    kind = _PATH_OPTIONS[option]
    if "://" in value or value.startswith(("file:", "git+", "$")):
        return line
    if kind == "requirement":
        nested = _local_path(value, where, project=False)
        copy = _copy(Path(nested), scratch, out, f"{nested} (included from {where.label})")
        return f"{option} {copy}{rest}"
    absolute = _local_path(value, where, project=kind == "editable")
    return f"{option} {absolute}{rest}"


def _requirement_line(line: str, where: _Where, out: AbsoluteRequirements) -> str:
    out.pin(*_line_pins(line))
    direct = _DIRECT.match(line)
    if direct:
        dist, extras, location, rest = direct.groups()
        if location.startswith("file:"):
            path = urllib.request.url2pathname(urllib.parse.urlsplit(location).path)
            if Path(path).is_absolute():
                _local_path(path, where, project=True)
                return line
            location = path
        elif "://" in location or location.startswith("$"):
            return line
        return f"{dist}{extras or ''} @ {_local_path(location, where, project=True)}{rest}"
    first, _, rest = line.partition(" ")
    path, semicolon, marker = first.partition(";")
    if not _is_local(path):
        return line
    return f"{_local_path(path, where, project=True)}{semicolon}{marker} {rest}".rstrip()


def _rewrite(text: str, where: _Where, out: AbsoluteRequirements, scratch: Path) -> str:
    """The lines of one file (labels get `:LINE`) or of one `--with` value (labels stay)."""
    lines = []
    for number, line in logical_lines(text):
        label = where.label if where.label.startswith("--with") else f"{where.label}:{number}"
        at = _Where(label, where.base, where.relative_to)
        if line.startswith("-"):
            lines.append(_option_line(line, at, out, scratch))
        else:
            lines.append(_requirement_line(line, at, out))
    return "\n".join(lines) + "\n"


def _copy(original: Path, scratch: Path, out: AbsoluteRequirements, label: str) -> Path:
    """The absolute copy of one requirements file (made once, even when included twice)."""
    key = str(original.resolve())
    for made, named in out.originals.items():
        if named == key:
            return Path(made)
    copy = scratch / f"requirements-{len(out.originals) + 1}.txt"
    out.originals[str(copy)] = key
    try:
        text = original.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read requirements file {label}: {exc}"
        raise InputError(msg, hint="check the path given to -r") from exc
    where = _Where(str(original), original.resolve().parent, f"the folder of {original}")
    copy.write_text(_rewrite(text, where, out, scratch), encoding="utf-8")
    return copy


def absolute_requirements(
    files: Sequence[Path], with_lines: Sequence[str], cwd: Path, scratch: Path
) -> AbsoluteRequirements:
    """Copies of `files` and one file of the `--with` lines, every local path absolute."""
    out = AbsoluteRequirements()
    for original in files:
        if not original.is_file():
            msg = f"requirements file not found: {original}"
            raise InputError(msg, hint="check the path given to -r")
        out.files.append(_copy(original, scratch, out, str(original)))
    if with_lines:
        copy = scratch / "requirements-with.txt"
        out.originals[str(copy)] = "--with"
        base = cwd.resolve()
        rewritten = [
            _rewrite(line, _Where(f"--with {line!r}", base, "the current folder"), out, scratch)
            for line in with_lines
        ]
        copy.write_text("".join(rewritten), encoding="utf-8")
        out.files.append(copy)
    return out

"""Give every .py of the environment a .pyc that stays valid on the target, the same each build.

Without it, the first start on the target compiles every module it imports, and a user who
cannot write into the environment (a root-owned install) compiles them again at every start.
The .pyc files that conda packages or the base interpreter bring are stale anyway: the payload
stores every mtime as 0. So every old ``__pycache__/*.pyc`` is removed and every source
compiled again into checked-hash bytecode (see target/pyc_worker.py), by the environment's
own interpreter, or for a foreign platform by a CPython of the same X.Y found on this machine.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from portenv.errors import SealError
from portenv.model import StagedPrefix
from portenv.platforms import host_subdir
from portenv.seal.files import target_file
from portenv.target.pyc_worker import compile_in_parallel

__all__ = [
    "BYTECODE_SCOPES",
    "Bytecode",
    "BytecodeCounts",
    "BytecodeScope",
    "cache_folder",
    "clear_bytecode",
    "compile_prefix",
    "find_compiler",
    "started_sources",
]

BytecodeScope = Literal["all", "stdlib", "none"]
BYTECODE_SCOPES: tuple[BytecodeScope, ...] = ("all", "stdlib", "none")
"""Which sources ship with their .pyc: every one; the interpreter's own library and what a
``.pth`` file imports at every start (site-packages is compiled at its first import on the
target, as after pixi-unpack or uv, or at unpack with --compile); none."""
_SITE_DIRS = frozenset({"site-packages", "dist-packages"})

_QUERY = (
    "import importlib.util, sys;"
    "print('%d.%d' % sys.version_info[:2], importlib.util.MAGIC_NUMBER.hex(), sys.version)"
)
_SKIPPED = (".portenv",)
"""Folders whose .py files are never imported (relocate.py runs as a script, with -B)."""


@dataclass(frozen=True)
class Bytecode:
    """The interpreter that compiles the environment's bytecode."""

    python: Path
    version: str
    """``3.12``: the environment's X.Y."""
    identity: str
    """The compiler's ``sys.version``: what the bytecode depends on besides the sources."""
    cache: Path | None = None
    """Where compiled .pyc files are kept for later packs (see cache_folder)."""
    scope: BytecodeScope = "all"
    """Which sources get their .pyc (see BYTECODE_SCOPES; "none" never comes here)."""


@dataclass(frozen=True)
class BytecodeCounts:
    """What the compilation did: compiled, left to the relocation, not valid Python."""

    compiled: int
    reused: int
    """Taken from the bytecode cache, compiled by an earlier pack."""
    held: int
    failed: int


def _query(python: str) -> tuple[str, str, str] | None:
    """(X.Y, magic number in hex, sys.version) of an interpreter, None if it does not run."""
    try:
        done = subprocess.run(
            [python, "-s", "-S", "-c", _QUERY],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={"LC_ALL": "C"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = done.stdout.split(" ", 2)
    if done.returncode != 0 or len(words) != 3:
        return None
    return words[0], words[1], words[2].strip()


def _shipped_magic(root: Path, version: str) -> str | None:
    """The magic number of a .pyc the environment's python brought along, if it has one."""
    tag = version.replace(".", "")
    for pyc in sorted((root / "lib" / f"python{version}" / "__pycache__").glob(f"*-{tag}.pyc")):
        with pyc.open("rb") as stream:
            return stream.read(4).hex()
    return None


def find_compiler(staged: StagedPrefix, candidates: Sequence[str] = ()) -> Bytecode | str:
    """The environment's own python when it runs here; else a CPython of the same X.Y and magic
    number (``candidates``, then the running interpreter, then ``pythonX.Y`` on PATH).

    Returns the reason as a string when there is none: the environment is then packed without
    bytecode, which costs the first start on the target, and every start of a user who cannot
    write into the environment.
    """
    version = Path(staged.python).name.removeprefix("python")
    if staged.subdir == host_subdir():
        found = _query(str(staged.path / staged.python))
        if found is not None and found[0] == version:
            return Bytecode(staged.path / staged.python, version, found[2])
    wanted = _shipped_magic(staged.path, version)
    on_path = shutil.which(f"python{version}")
    for candidate in dict.fromkeys([*candidates, sys.executable, *([on_path] if on_path else [])]):
        found = _query(candidate)
        if found is not None and found[0] == version and wanted in (None, found[1]):
            return Bytecode(Path(candidate), version, found[2])
    return (
        f"no CPython {version} that runs on this machine to compile the bytecode of this"
        f" {staged.subdir} environment"
    )


def clear_bytecode(root: Path) -> list[str]:
    """Remove every ``__pycache__`` .pyc under ``root``; the .py files (relative, sorted)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = os.path.relpath(dirpath, root)
        if here == ".":
            dirnames[:] = [d for d in dirnames if d not in _SKIPPED]
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path) and not _inside(path, root):
                continue
            if name.endswith(".pyc") and os.path.basename(dirpath) == "__pycache__":
                os.unlink(path)  # stale on the target: the payload's mtimes are 0
            elif name.endswith(".py"):
                found.append(name if here == "." else os.path.join(here, name))
    return found


def started_sources(root: Path, sources: list[str]) -> list[str]:
    """The `sources` outside site-packages, and those a ``.pth`` file there imports: what
    any start of the interpreter may import before the application's own packages."""
    kept: list[str] = []
    by_folder: dict[str, set[str]] = {}
    for source in sources:
        parts = source.split(os.sep)
        site = next((i for i, part in enumerate(parts) if part in _SITE_DIRS), None)
        if site is None:
            kept.append(source)
            continue
        folder = os.sep.join(parts[: site + 1])
        if folder not in by_folder:
            by_folder[folder] = _pth_imports(root / folder)
        inside = parts[site + 1 :]
        top = inside[0].removesuffix(".py") if len(inside) == 1 else inside[0]
        if top in by_folder[folder] and (len(inside) == 1 or inside[1:] == ["__init__.py"]):
            kept.append(source)
    return kept


def _pth_imports(site: Path) -> set[str]:
    """Top-level modules that the ``.pth`` files of `site` import (``import a, b`` lines)."""
    names: set[str] = set()
    for pth in site.glob("*.pth"):
        for line in pth.read_text("utf-8", "replace").splitlines():
            if line.startswith(("import ", "import\t")):
                first = line.split(";", 1)[0].removeprefix("import").split(",")
                names.update(n.strip().split(".")[0] for n in first if n.strip())
    return names


def _inside(link: str, root: Path) -> bool:
    """A symlink to a file of the env: Python imports it by its own name (Debian's
    ``_sysconfigdata__linux_*`` is one), so it needs bytecode of its own."""
    target = os.path.realpath(link)
    return os.path.isfile(target) and Path(target).is_relative_to(root.resolve())


def cache_folder(cache: Path, bytecode: Bytecode, worker: str) -> Path:
    """Where .pyc files compiled by this compiler with this worker are kept between packs."""
    identity = f"{bytecode.identity}\0{worker}".encode()
    return cache / hashlib.sha256(identity).hexdigest()[:24]


def compile_prefix(
    root: Path,
    bytecode: Bytecode,
    placeholder: str,
    jobs: int | None = None,
) -> BytecodeCounts:
    """Compile every .py under ``root`` in parallel (with the scope ``stdlib``, those of the
    interpreter's library and the modules ``.pth`` files import); a source holding
    ``placeholder`` is left for the relocation (its bytecode would hold the placeholder where
    nothing rewrites it).

    With ``bytecode.cache``, each .pyc is kept there and reused by later packs."""
    sources = clear_bytecode(root)
    if bytecode.scope == "stdlib":
        sources = started_sources(root, sources)
    worker = target_file("pyc_worker.py")
    # -B: the worker's own imports (re, importlib ...) come from the env's stdlib when it runs
    # the env's python; without it they would write timestamp .pyc files there, racing with
    # the checked-hash ones the workers write for the same modules.
    argv = [str(bytecode.python), "-B", "-s", "-S", "-c", worker, str(root), placeholder]
    if bytecode.cache is not None:
        argv.append(str(cache_folder(bytecode.cache, bytecode, worker)))
    env = {"PYTHONHASHSEED": "0", "LC_ALL": "C"}  # frozensets iterate in one order
    try:
        totals, problems = compile_in_parallel(
            argv, str(root), sources, jobs or os.cpu_count() or 1, env
        )
    except OSError as exc:
        problems = [f"cannot start it: {exc.strerror or exc}"]
    if problems:
        msg = f"compiling the bytecode with {bytecode.python} failed: {problems[0]}"
        raise SealError(msg, hint="pass --no-bytecode to pack without bytecode")
    _drop_empty_caches(root)
    return BytecodeCounts(**totals)


def _drop_empty_caches(root: Path) -> None:
    """A ``__pycache__`` left empty (its sources held the placeholder, or did not compile)."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        if os.path.basename(dirpath) == "__pycache__" and not dirnames and not filenames:
            os.rmdir(dirpath)

"""Apply a portenv update (``portenv delta``) to the environment it was made for.

Runs on the target with the old environment's own python and the standard library only: the
unpacker extracts the update into a work folder beside the environment and runs this file
from there (``.portenv-update/apply.py``); ``portenv unpack`` imports it. It

1. checks that the environment is exactly the one the update was made from: every path, its
   kind (folder, file, executable, symlink) and content, compared in the payload's form (the
   files the relocation manifest lists are read back to the placeholder, so the check does not
   depend on where the environment was unpacked or moved to); the bytecode written since for
   the sources of that environment (by Python at import, or by an unpack with --compile) is
   not part of it;
2. builds the new tree beside it: unchanged files are hard links, the files that hold the
   prefix as text are written back in their payload form, new and changed files come from
   the update; then relocates what is in payload form with the new environment's own
   relocation engine, exactly as an unpack of the new archive does;
3. switches it in with one rename (an exchange of the two folders where the kernel has it,
   else two renames that the unpacker's sweep undoes when killed between them).

A kill at any moment leaves the old environment or the complete new one; the work folder is
removed by the next run. See docs/format.md, "Updates".
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import stat
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs more to import than checking a small environment
    from typing import Any

__all__ = [
    "PLAN",
    "UpdateError",
    "apply",
    "canonical_manifest",
    "carry_compiled",
    "check_old",
    "drop_compiled",
    "identity",
    "members",
    "tree_listing",
]

PLAN = ".portenv-update/plan.json"
FILES = ".portenv-update/files"
MANIFEST = ".portenv/manifest.json"
_TRAMPOLINE = b"#!/bin/sh\n'''exec' \""
_TRAMPOLINE_END = b'" "$0" "$@"\n\' \'\'\''
_SHOWN = 5
RENAME_EXCHANGE = 2


class UpdateError(Exception):
    """The update cannot be applied; `code` is the unpacker's exit code, `hint` the fix."""

    def __init__(self, message: str, hint: str, code: int = 5) -> None:
        super().__init__(message)
        self.hint = hint
        self.code = code


def canonical_manifest(data: bytes, placeholder: str) -> bytes:
    """The relocation manifest as the payload holds it: its `prefix` is the placeholder."""
    manifest = json.loads(data.decode("utf-8"))
    manifest["prefix"] = placeholder
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()


def _fold_trampoline(data: bytes) -> bytes:
    """Undo the relocation's `/bin/sh` trampoline: back to the `#!` line it stands for."""
    if not data.startswith(_TRAMPOLINE):
        return data
    end = data.find(_TRAMPOLINE_END, len(_TRAMPOLINE))
    if end < 0 or b"\n" in data[len(_TRAMPOLINE) : end]:
        return data
    return b"#!" + data[len(_TRAMPOLINE) : end] + data[end + len(_TRAMPOLINE_END) :]


def payload_form(data: bytes, entry: dict | None, prefix: bytes, placeholder: bytes) -> bytes:  # type: ignore[type-arg]
    """A file's content with the prefix it holds now put back to the placeholder: what its
    digest is taken of. A text file's `/bin/sh` trampoline is folded back to its `#!` line,
    on both sides: a payload may hold one (a long placeholder) where the target has none."""
    if entry is None:
        return data
    if entry["mode"] == "binary":
        out = bytearray(data)
        for offset, length in entry["regions"]:
            text = bytes(out[offset : offset + length]).rstrip(b"\0").replace(prefix, placeholder)
            if len(text) > length:
                return data
            out[offset : offset + length] = text + b"\0" * (length - len(text))
        return bytes(out)
    return _fold_trampoline(data.replace(prefix, placeholder))


def members(root: str | os.PathLike[str]) -> list[str]:
    """Every path under `root`, relative, sorted so parents come before children (the
    payload's order)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            found.append(name if base == "." else f"{base}/{name}")
    return sorted(found, key=lambda p: p.split("/"))


def _derived(manifest: dict) -> set[str]:  # type: ignore[type-arg]
    """``FOLDER/__pycache__/NAME.`` of each source the relocation rewrites: it writes their
    bytecode (never in a payload), which may or may not exist."""
    found = set()
    for entry in manifest.get("files", ()):
        path = str(entry["path"])
        if entry["mode"] == "text" and path.endswith(".py"):
            folder, name = os.path.split(path)
            found.add(os.path.join(folder, "__pycache__", name[:-3] + "."))
    return found


def drop_derived(listing: list[list[str]], manifest: dict) -> list[list[str]]:  # type: ignore[type-arg]
    """The listing without the bytecode the relocation writes, nor the __pycache__ folders
    that hold nothing else: the same listing for a payload and for an unpacked tree."""
    derived = _derived(manifest)
    if not derived:
        return listing
    caches = {os.path.dirname(d) for d in derived}

    def is_derived(path: str) -> bool:
        folder, name = os.path.split(path)
        return name.endswith(".pyc") and os.path.join(folder, name.split(".")[0] + ".") in derived

    kept = [e for e in listing if not is_derived(e[0])]
    used = {os.path.dirname(e[0]) for e in kept}
    return [e for e in kept if not (e[1] == "d" and e[0] in caches and e[0] not in used)]


def _placeholder(prefix_max: int) -> str:
    unit = "/portenv_placehold"
    return (unit * (prefix_max // len(unit) + 1))[:prefix_max]


def _load_manifest(root: str) -> dict:  # type: ignore[type-arg]
    with open(os.path.join(root, MANIFEST), "rb") as stream:
        return json.loads(stream.read().decode("utf-8"))  # type: ignore[no-any-return]


def tree_listing(root: str) -> list[list[str]]:
    """``[path, kind, digest or link target]`` of every path under `root`, in payload order.

    Kinds are those of the payload: ``d`` folder, ``f`` file, ``x`` executable, ``l`` symlink
    (``?`` anything else). A file's digest is the sha256 of its payload form; the manifest's
    own is that of its canonical form; the bytecode relocation writes is left out.
    """
    manifest = _load_manifest(root)
    holder = _placeholder(int(manifest["prefix_max"]))
    prefix = str(manifest["prefix"]).encode()
    entries = {str(e["path"]): e for e in manifest["files"]}
    out = []
    for path in members(root):
        full = os.path.join(root, path)
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            out.append([path, "l", os.readlink(full)])
        elif stat.S_ISDIR(st.st_mode):
            out.append([path, "d", ""])
        elif stat.S_ISREG(st.st_mode):
            if path == MANIFEST:
                digest = hashlib.sha256(canonical_manifest(_read(full), holder)).hexdigest()
            elif path in entries:
                form = payload_form(_read(full), entries[path], prefix, holder.encode())
                digest = hashlib.sha256(form).hexdigest()
            else:
                digest = _sha256_of(full)
            out.append([path, "x" if st.st_mode & 0o100 else "f", digest])
        else:
            out.append([path, "?", ""])
    return drop_derived(out, manifest)


def identity(listing: list[list[str]]) -> str:
    """The identity of a tree: the sha256 of its listing, wherever it lives."""
    text = "".join(f"{kind} {digest} {path}\n" for path, kind, digest in listing)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _differences(have: list[list[str]], want: list[list[str]]) -> list[str]:
    mine = {p: (k, d) for p, k, d in have}
    theirs = {p: (k, d) for p, k, d in want}
    out = [f"{p} (missing)" for p in theirs if p not in mine]
    out += [f"{p} (added)" for p in mine if p not in theirs]
    out += [f"{p} (changed)" for p in theirs if p in mine and mine[p] != theirs[p]]
    return sorted(out)


def drop_compiled(have: list[list[str]], tree: list[list[str]]) -> list[list[str]]:
    """`have` without the bytecode written for a source of `tree` that `tree` does not hold
    (``__pycache__/NAME.*.pyc`` beside ``NAME.py``), nor a ``__pycache__`` folder `tree` does
    not hold that is left with nothing else: what Python writes when a module is imported,
    or ``--compile`` when the environment is unpacked, derives from the sources alone."""
    listed = {str(e[0]) for e in tree}

    def compiled(path: str) -> bool:
        folder, name = os.path.split(path)
        if path in listed or not name.endswith(".pyc") or os.path.basename(folder) != "__pycache__":
            return False
        return _source_of(path) in listed

    kept = [e for e in have if not compiled(e[0])]
    used = {os.path.dirname(e[0]) for e in kept}

    def emptied(entry: list[str]) -> bool:
        path = entry[0]
        cache = entry[1] == "d" and os.path.basename(path) == "__pycache__"
        return cache and path not in listed and path not in used

    return [e for e in kept if not emptied(e)]


def check_old(dest: str, plan: dict) -> list[str]:  # type: ignore[type-arg]
    """Refuse unless `dest` is exactly the environment the update was made from; the paths of
    the bytecode written since for its own sources (left out of the comparison)."""
    if not os.path.isfile(os.path.join(dest, MANIFEST)):
        msg = f"{dest} is not a portenv environment (no {MANIFEST})"
        raise UpdateError(msg, "give -o and --env-name of the environment to update")
    try:
        listing = tree_listing(dest)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"cannot read the environment {dest}: {exc}"
        raise UpdateError(msg, "check its permissions; unpack the old archive again") from exc
    have = drop_compiled(listing, plan["old"])
    prefix = _load_manifest(dest)["prefix"]
    if identity(have) == plan["from"] and prefix != dest:
        msg = f"{dest} was moved from {prefix} and not relocated"
        raise UpdateError(msg, f"run {dest}/bin/portenv-relocate first, then the update")
    if identity(have) == plan["from"]:
        kept = {e[0] for e in have}
        return [e[0] for e in listing if e[0] not in kept and e[1] != "d"]
    if identity(drop_compiled(listing, plan["new"])) == plan["to"]:
        msg = f"{dest} is already updated (to {plan['to'][:12]}): nothing to do"
        raise UpdateError(msg, "this update was applied before; nothing was changed")
    diff = _differences(have, plan["old"])
    shown = ", ".join(diff[:_SHOWN]) + (
        f" and {len(diff) - _SHOWN} more" if len(diff) > _SHOWN else ""
    )
    msg = f"{dest} is not the environment this update was made from: {shown}"
    raise UpdateError(
        msg, "unpack the old archive again, or the new one in full; nothing was changed"
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
    os.chmod(path, mode)
    os.utime(path, (0, 0))


def _sha256_of(path: str) -> str:
    """A file's sha256, read in chunks (a library may be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read(path: str) -> bytes:
    with open(path, "rb") as stream:
        return stream.read()


def build(dest: str, update: str, work: str, plan: dict) -> list[str]:  # type: ignore[type-arg]
    """Lay out the new tree in `work`: kept files are hard links of the old tree's (a plan
    ships every file that holds the prefix as text, or whose manifest entry changed, so a
    kept file holds it only in binary regions, which relocate again exactly). Returns the
    relative paths of the shipped files, in payload form."""
    mask = _umask()
    shipped: list[str] = []
    os.mkdir(work, 0o755 & ~mask)
    for path, kind, value, source in plan["new"]:
        target = os.path.join(work, path)
        mode = (0o755 if kind in "dx" else 0o644) & ~mask
        if kind == "d":
            os.mkdir(target, mode)
        elif kind == "l":
            os.symlink(value, target)
        elif source == "update":
            os.rename(os.path.join(update, FILES, path), target)
            os.chmod(target, mode)
            os.utime(target, (0, 0))
            shipped.append(path)
        else:
            _link(os.path.join(dest, path), target, mode)
    return shipped


def _source_of(pyc: str) -> str:
    """The source a ``DIR/__pycache__/NAME.TAG.pyc`` was compiled from: ``DIR/NAME.py``."""
    folder, name = os.path.split(pyc)
    return os.path.join(os.path.dirname(folder), name.split(".")[0] + ".py")


def carry_compiled(dest: str, work: str, plan: dict, compiled: list[str]) -> None:  # type: ignore[type-arg]
    """Keep the bytecode written in `dest` for its own sources (`compiled`: by --compile, or
    by Python at import) where the new tree keeps the source as it is: still valid, and
    users who cannot write into the env would otherwise compile those modules again at
    every start."""
    kept = {e[0] for e in plan["new"] if e[3] == "old" and e[0].endswith(".py")}
    for path in compiled:
        source = _source_of(path)
        target = os.path.join(work, path)
        if source in kept and not os.path.lexists(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            _link(os.path.join(dest, path), target, 0o644 & ~_umask())


def _link(source: str, target: str, mode: int) -> None:
    """A hard link of an unchanged file, else a copy (a file system without them)."""
    try:
        os.link(source, target)
    except OSError:
        _write(target, _read(source), mode)


def relocate_new(work: str, dest: str, shipped: list[str], engine_path: str) -> Any:
    """Relocate what is in payload form with the new environment's engine, then write the
    new manifest as an unpack of the new archive leaves it; the engine (a module)."""
    spec = importlib.util.spec_from_file_location("portenv_update_relocate", engine_path)
    assert spec is not None and spec.loader is not None
    engine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engine)
    full = _load_manifest(work)
    partial = dict(full)
    wanted = set(shipped)
    partial["files"] = [e for e in full["files"] if e["path"] in wanted]
    partial["prefix"] = engine.placeholder(int(full["prefix_max"]))
    manifest = os.path.join(work, MANIFEST)
    os.unlink(manifest)
    _write(manifest, json.dumps(partial).encode(), 0o644)
    engine.relocate(work, dest)
    full["prefix"] = dest
    os.unlink(manifest)
    _write(manifest, (json.dumps(full, indent=1, sort_keys=True) + "\n").encode(), 0o644)
    return engine


def compile_new(engine: Any, work: str, dest: str, jobs: int | None) -> None:
    """--compile: the new tree's sources without bytecode get it, as an unpack with --compile
    gives them (the new environment's engine and worker do it)."""
    compile_missing = getattr(engine, "compile_missing", None)
    try:
        if compile_missing is None:
            msg = "this update's relocation engine cannot compile bytecode (an older portenv's)"
            raise RuntimeError(msg)
        compile_missing(work, jobs)
    except Exception as exc:  # the engine's own CompileError, or what it hit
        msg = f"compiling the bytecode failed: {exc}"
        hint = (
            f"{dest} was left as it was; leave out --compile: Python then compiles each"
            " module when it is first imported"
        )
        raise UpdateError(msg, hint, 8) from exc


def _exchange(a: str, b: str) -> bool:
    """Swap two folders in one step (Linux renameat2); False where it is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.renameat2
    except (ImportError, OSError, AttributeError):
        return False
    at_cwd = -100
    return call(at_cwd, a.encode(), at_cwd, b.encode(), RENAME_EXCHANGE) == 0  # type: ignore[no-any-return]


def switch(work: str, dest: str, aside: str) -> None:
    """Put the new tree at `dest`; the old one ends at `work` (exchanged) or `aside`."""
    if _exchange(work, dest):
        return
    os.rename(dest, aside)
    os.rename(work, dest)


def apply(dest: str, update: str, aside: str, compile_jobs: int | None = None) -> int:
    """Check, build in ``UPDATE/new``, relocate (with `compile_jobs`, also compile: 0 is one
    worker per core) and switch; the number of paths now in `dest`."""
    plan = json.loads(_read(os.path.join(update, PLAN)).decode("utf-8"))
    compiled = check_old(dest, plan)
    work = os.path.join(update, "new")
    shipped = build(dest, update, work, plan)
    carry_compiled(dest, work, plan, compiled)
    engine_path = os.path.join(update, ".portenv-update", "relocate.py")
    try:
        engine = relocate_new(work, dest, shipped, engine_path)
    except Exception as exc:  # the new engine's own RelocationError, or what it hit
        msg = f"relocating the new files to {dest} failed: {exc}"
        raise UpdateError(
            msg, f"{dest} was left as it was; choose a shorter or plainer path", 8
        ) from exc
    if compile_jobs is not None:
        compile_new(engine, work, dest, compile_jobs or None)
    switch(work, dest, aside)
    return len(plan["new"])


def _compile_jobs(options: list[str]) -> int | None:
    """``--compile [--jobs=N]`` (what the unpacker passes on): N, 0 for every core, or None."""
    if "--compile" not in options:
        return None
    jobs = [o.split("=", 1)[1] for o in options if o.startswith("--jobs=")]
    return int(jobs[0]) if jobs and jobs[0].isdigit() else 0


def main(argv: list[str]) -> int:
    """``apply.py DEST UPDATE ASIDE [--check | --compile [--jobs=N]]``: one
    ``error:``/``hint:`` pair on failure."""
    dest, update, aside = argv[:3]
    try:
        if argv[3:] == ["--check"]:  # UPDATE "-": the plan comes on stdin
            plan = sys.stdin.buffer.read() if update == "-" else _read(os.path.join(update, PLAN))
            check_old(dest, json.loads(plan.decode("utf-8")))
        else:
            apply(dest, update, aside, _compile_jobs(argv[3:]))
    except UpdateError as exc:
        print(f"error: {exc}\n  hint: {exc.hint}", file=sys.stderr)
        return exc.code
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: updating {dest} failed: {exc}", file=sys.stderr)
        print(
            f"  hint: {dest} was left as it was; check the free space and permissions",
            file=sys.stderr,
        )
        return 8
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

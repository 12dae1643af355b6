"""Compile .py files into checked-hash .pyc files that are the same bytes on every build.

Runs under the interpreter whose bytecode it writes: the environment's own (or a CPython of the
same X.Y for a foreign platform) at pack time, and on the target, as .portenv/pyc_worker.py,
for the sources the relocation rewrote. ``python -s -S pyc_worker.py ROOT PLACEHOLDER [CACHE]``
with PYTHONHASHSEED=0 and the NUL-separated source paths (relative to ROOT) on stdin prints
``compiled N reused N held N failed N``. Standard library only, and Python 3.8 syntax:
this file runs under every CPython that portenv packs. ``compile_in_parallel`` starts those
workers, one per group of sources (``groups``): the seal at pack time and the relocation on
the target (also under portenv's own python, by ``portenv unpack``) share it.

Why each choice (see docs/format.md, "Bytecode"):

- checked-hash (PEP 552): valid whatever mtimes the extracting tool sets, and never rewritten
  on the target while the source is unchanged;
- ``co_filename`` is the path relative to ROOT: the staging folder is a temporary name, and
  Python puts the real source path into a code object it loads from a .pyc anyway;
- a source that holds the placeholder is not compiled (its bytecode would hold it too, where
  relocation cannot rewrite it): the relocation compiles it on the target after rewriting;
- marshal sets FLAG_REF on every object whose reference count is above 1 when it is written,
  and that count depends on what else the process holds (interned names used by files compiled
  before). ``canonical_refs`` keeps the flag only on objects that a later TYPE_REF names, so
  the bytes depend on the code alone, not on which worker compiled which file in which order.
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import sys
import types
import warnings

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and hashlib cost more to import than a relocation takes
    from typing import Any

__all__ = [
    "COUNTS",
    "PER_WORKER",
    "Worker",
    "canonical_refs",
    "checked_hash_pyc",
    "compile_here",
    "compile_in_parallel",
    "cores",
    "groups",
    "main",
    "missing_bytecode",
    "seedless_pyc",
]

COUNTS = ("compiled", "reused", "held", "failed")
"""What a worker prints a number of, in this order."""
PER_WORKER = 64
"""Sources per worker at least: a worker's start costs about one file's compilation."""

FLAG_REF = 0x80
_CHECKED_HASH = (0b11).to_bytes(4, "little")
_FIXED = {ord(k): n for k, n in (("0", 0), ("N", 0), ("F", 0), ("T", 0), ("S", 0), (".", 0))}
_FIXED.update({ord("i"): 4, ord("g"): 8, ord("y"): 16})
_SIZED = frozenset(b"stuaA")
"""A 4-byte length, then that many bytes."""
_SHORT = frozenset(b"zZf")
"""A 1-byte length, then that many bytes."""
_SEQUENCE = frozenset(b"([<>")
"""A 4-byte count, then that many objects."""
# The fields marshal writes for a code object after its type byte: 4-byte integers before the
# objects, objects, then (after the first line number) objects (Python/marshal.c, w_object).
_CODE_LAYOUT = {(3, 8): (6, 8, 1), (3, 9): (6, 8, 1), (3, 10): (6, 8, 1)}
_CODE_LAYOUT_311 = (5, 8, 2)


class _Refs:
    """Where each flagged object's type byte is, and where each TYPE_REF's index is."""

    def __init__(self, data: bytes, layout: tuple[int, int, int]) -> None:
        self.data = data
        self.layout = layout
        self.flagged: list[int] = []
        self.uses: list[int] = []

    def int_at(self, pos: int) -> int:
        return int.from_bytes(self.data[pos : pos + 4], "little", signed=True)

    def skip(self, pos: int) -> int:
        """The position after the object that starts at ``pos``."""
        kind = self.data[pos]
        if kind & FLAG_REF:
            self.flagged.append(pos)
            kind &= ~FLAG_REF
        pos += 1
        if kind in _FIXED:
            return pos + _FIXED[kind]
        if kind in _SIZED:
            return pos + 4 + self.int_at(pos)
        if kind in _SHORT:
            return pos + 1 + self.data[pos]
        if kind in _SEQUENCE:
            return self._items(pos + 4, self.int_at(pos))
        if kind == ord(")"):
            return self._items(pos + 1, self.data[pos])
        return self._other(kind, pos)

    def _items(self, pos: int, count: int) -> int:
        for _ in range(count):
            pos = self.skip(pos)
        return pos

    def _other(self, kind: int, pos: int) -> int:
        if kind == ord("r"):
            self.uses.append(pos)
            return pos + 4
        if kind == ord("l"):
            return pos + 4 + 2 * abs(self.int_at(pos))
        if kind == ord("x"):
            pos += 1 + self.data[pos]
            return pos + 1 + self.data[pos]
        if kind == ord("{"):
            while self.data[pos] != ord("0"):
                pos = self.skip(self.skip(pos))
            return pos + 1
        if kind == ord(":"):  # a slice constant (3.14)
            return self._items(pos, 3)
        if kind == ord("c"):
            before, objects, after = self.layout
            pos = self._items(pos + 4 * before, objects)
            return self._items(pos + 4, after)
        msg = f"unknown marshal type {chr(kind)!r}"
        raise ValueError(msg)


def canonical_refs(data: bytes, version: tuple[int, int]) -> bytes:
    """``data`` (marshal output) with FLAG_REF only where a TYPE_REF refers back, renumbered."""
    layout = _CODE_LAYOUT.get(version, _CODE_LAYOUT_311)
    refs = _Refs(data, layout)
    end = refs.skip(0)
    if end != len(data):
        msg = f"marshal data ends at {end}, not {len(data)}"
        raise ValueError(msg)
    used = sorted({refs.int_at(pos) for pos in refs.uses})
    renumber = {old: new for new, old in enumerate(used)}
    out = bytearray(data)
    for index, pos in enumerate(refs.flagged):
        if index not in renumber:
            out[pos] &= ~FLAG_REF
    for pos in refs.uses:
        out[pos : pos + 4] = renumber[refs.int_at(pos)].to_bytes(4, "little")
    return bytes(out)


def _key(value: object) -> object:
    """What two constants must share to be one object: the compiler's rule, type and value."""
    if type(value) is tuple:
        return (tuple, tuple(_key(v) for v in value))
    if type(value) is frozenset:
        return (frozenset, frozenset(_key(v) for v in value))
    if type(value) is float:
        return (float, value.hex())
    if type(value) is complex:
        return (complex, value.real.hex(), value.imag.hex())
    return (type(value), value)


def _merged(value: Any, seen: dict[object, Any]) -> Any:
    """``value`` with equal constants made one object, whatever the compiler shared.

    Which equal constants the compiler hands out as one object can depend on what the process
    compiled before (seen with 3.12); merging them all by content makes that moot.
    """
    if isinstance(value, types.CodeType):
        return value.replace(co_consts=tuple(_merged(c, seen) for c in value.co_consts))
    if type(value) is tuple:
        value = tuple(_merged(v, seen) for v in value)
    elif type(value) is frozenset:
        value = frozenset(_merged(v, seen) for v in value)
    return seen.setdefault(_key(value), value)


def _header(source: bytes) -> bytes:
    return importlib.util.MAGIC_NUMBER + _CHECKED_HASH + importlib.util.source_hash(source)


def _holds_a_set(value: object) -> bool:
    """Whether a code object's constants hold a frozenset (``x in {'a', 'b'}``)."""
    if isinstance(value, types.CodeType):
        return any(_holds_a_set(c) for c in value.co_consts)
    if type(value) is tuple:
        return any(_holds_a_set(v) for v in value)
    return type(value) is frozenset


def checked_hash_pyc(source: bytes, name: str) -> bytes:
    """The checked-hash .pyc of ``source``, its code objects naming ``name`` as their file."""
    return _pyc(compile(source, name, "exec", dont_inherit=True), source)


def seedless_pyc(source: bytes, name: str) -> bytes | None:
    """checked_hash_pyc in a process whose hash seed is not fixed: None for code that holds a
    frozenset, which marshal writes in its iteration order, following the string hashes (its
    bytes would differ from run to run)."""
    code = compile(source, name, "exec", dont_inherit=True)
    return None if _holds_a_set(code) else _pyc(code, source)


def _pyc(code: types.CodeType, source: bytes) -> bytes:
    body = canonical_refs(marshal.dumps(_merged(code, {})), sys.version_info[:2])
    return _header(source) + body


def _write(path: str, data: bytes) -> None:
    """Write a new file (never through an existing one: it may be a hard link into a cache)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    with open(path, "wb") as stream:
        stream.write(data)


class Worker:
    """Compiles sources under ``root``; with ``cache``, reuses what an earlier pack compiled.

    The cache holds one .pyc per (file name, source) under its sha256: the folder is chosen by
    the caller for one compiler and one version of this file.
    """

    def __init__(
        self, root: str, placeholder: bytes, cache: str | None, *, seed_fixed: bool = True
    ) -> None:
        self.root = root
        self.placeholder = placeholder
        self.cache = cache
        self.seed_fixed = seed_fixed
        self.counts = dict.fromkeys(COUNTS, 0)

    def _cached(self, relative: str, source: bytes) -> tuple[str, bytes | None]:
        name = relative.encode("utf-8", "surrogateescape")
        import hashlib  # only a pack keeps a cache

        key = hashlib.sha256(name + b"\0" + source).hexdigest()
        path = os.path.join(str(self.cache), key[:2], key[2:] + ".pyc")
        try:
            with open(path, "rb") as stream:
                data = stream.read()
        except OSError:
            return path, None
        return path, data if data[:16] == _header(source) else None

    def _keep(self, path: str, data: bytes) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.{os.getpid()}.partial"
        with open(partial, "wb") as stream:
            stream.write(data)
        os.replace(partial, path)

    def compile(self, relative: str) -> str:
        """``compiled``, ``reused``, ``held`` (holds the placeholder) or ``failed``; in a
        process whose hash seed is not fixed, ``deferred`` for what needs a fixed one."""
        path = os.path.join(self.root, relative)
        with open(path, "rb") as stream:
            source = stream.read()
        if self.placeholder in source:
            return "held"
        cached, data = self._cached(relative, source) if self.cache else ("", None)
        outcome = "reused" if data is not None else "compiled"
        if data is None:
            try:
                data = (checked_hash_pyc if self.seed_fixed else seedless_pyc)(source, relative)
            except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
                return "failed"
            if data is None:
                return "deferred"
            if cached:
                self._keep(cached, data)
        _write(importlib.util.cache_from_source(path), data)
        return outcome


def compile_here(root: str, placeholder: str, sources: list[str]) -> list[str]:
    """Compile `sources` (relative to `root`) in this process, which must run the python the
    bytecode is for: no second interpreter to start, for the few sources a relocation
    rewrites. Returns those left for a worker with a fixed hash seed (see checked_hash_pyc)."""
    worker = Worker(root, placeholder.encode(), None, seed_fixed=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarnings of the packages' sources are theirs
        return [s for s in sources if worker.compile(s) == "deferred"]


def groups(root: str, sources: list[str], jobs: int) -> list[list[str]]:
    """``sources`` (relative to ``root``) split into at most ``jobs`` lists of about the same
    number of bytes, none shorter than PER_WORKER sources but the only one."""
    count = max(1, min(jobs, len(sources) // PER_WORKER))
    found: list[list[str]] = [[] for _ in range(count)]
    loads = [0] * count
    sized = sorted(((os.path.getsize(os.path.join(root, s)), s) for s in sources), reverse=True)
    for size, source in sized:
        lightest = loads.index(min(loads))
        found[lightest].append(source)
        loads[lightest] += size
    return [g for g in found if g]


def cores() -> int:
    """The cores this process may run on (as nproc counts them): one worker each."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def missing_bytecode(root: str, tag: str, skipped: str) -> list[str]:
    """The .py files under ``root`` (relative, sorted) without ``__pycache__/NAME.TAG.pyc``,
    outside the top folder ``skipped``; a symlink counts when it leads to a file of ``root``
    (Python imports it by its own name)."""
    found: list[str] = []
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root and skipped in dirnames:
            dirnames.remove(skipped)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not name.endswith(".py") or not os.path.isfile(path):
                continue
            if os.path.islink(path) and not os.path.realpath(path).startswith(real_root + "/"):
                continue
            if not os.path.lexists(os.path.join(dirpath, "__pycache__", f"{name[:-3]}.{tag}.pyc")):
                found.append(os.path.relpath(path, root))
    return sorted(found)


def _send(fd: int, data: bytes) -> None:
    """Write ``data`` into a pipe and close it; a worker that died meanwhile says why itself."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BrokenPipeError:
        pass
    finally:
        os.close(fd)


def compile_in_parallel(
    argv: list[str], root: str, sources: list[str], jobs: int, env: dict[str, str]
) -> tuple[dict[str, int], list[str]]:
    """Run the worker command ``argv`` (``PYTHON ... ROOT PLACEHOLDER [CACHE]``) once per group
    of ``sources``, all at once; (the summed counts, the last stderr line of each worker that
    failed). OSError when a worker cannot be started (the ones started are stopped).

    Every worker gets all its names before the first result is read: a worker reads them to
    the end before it compiles, so feeding one only after the previous one finished would
    run them one after the other.
    """
    import subprocess  # here: the workers that run this file never need it

    running: list[tuple[subprocess.Popen[bytes], int, bytes]] = []
    try:
        for group in groups(root, sources, jobs):
            names, feed = os.pipe()
            try:
                pipes = subprocess.PIPE
                process = subprocess.Popen(argv, stdin=names, stdout=pipes, stderr=pipes, env=env)
            except OSError:
                os.close(feed)
                raise
            finally:
                os.close(names)
            running.append((process, feed, "\0".join(group).encode("utf-8", "surrogateescape")))
    except OSError:
        for process, feed, _ in running:
            os.close(feed)
            process.kill()
            process.communicate()
        raise
    for _, feed, data in running:
        _send(feed, data)
    totals = dict.fromkeys(COUNTS, 0)
    problems: list[str] = []
    for process, _, _ in running:
        out, err = process.communicate()
        words = out.decode("ascii", "replace").split()
        if process.returncode != 0 or words[::2] != list(COUNTS) or len(words) != 2 * len(COUNTS):
            lines = err.decode("utf-8", "replace").strip().splitlines()
            problems.append(lines[-1] if lines else f"exit {process.returncode}, no output")
            continue
        for index, key in enumerate(COUNTS):
            totals[key] += int(words[2 * index + 1])
    return totals, problems


def main(argv: list[str]) -> int:
    """``ROOT PLACEHOLDER [CACHE]``, the sources on stdin; prints what happened to them."""
    worker = Worker(argv[0], argv[1].encode(), argv[2] if len(argv) > 2 else None)
    warnings.simplefilter("ignore")  # SyntaxWarnings of the packages' sources are theirs
    for relative in sys.stdin.buffer.read().decode("utf-8", "surrogateescape").split("\0"):
        if relative:
            worker.counts[worker.compile(relative)] += 1
    print(" ".join(f"{k} {v}" for k, v in worker.counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

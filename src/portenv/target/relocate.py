"""Relocate a portenv environment to the path it lives at (or will live at).

Runs on the target with the environment's own python and the standard library only (no
portenv import): the unpacker calls it before renaming the env into place, and
`bin/portenv-relocate` calls it after the env was moved. It follows `.portenv/manifest.json`
(see docs/format.md): text files get every occurrence of the old prefix replaced, binary files
get each recorded C-string region rewritten and NUL-padded to its reserved length. Every file
is written to a new file beside it and renamed over the original, so a running interpreter or
a mapped shared library is never written in place. A rewritten .py gets its bytecode again,
from the packer's own worker (.portenv/pyc_worker.py). With --compile, so does every .py that
has no bytecode (packed with --bytecode stdlib or none), compiled in parallel:
for an environment installed once for users who cannot write into it (who would otherwise
compile every module they import at every start).

What was installed after unpacking (pip's console scripts with absolute shebangs, .pth files)
is not in the manifest. Every file of the payload was unpacked with mtime 0, so a relocation
from a real path (not the placeholder: that is the unpacker's, right after extraction) also
reads the files whose mtime is not 0: text files holding the old prefix are rewritten and
added to the manifest; binary ones cannot be rewritten safely and are named in a warning.
"""

from __future__ import annotations

import json
import os
import stat
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs more to import than the relocation of most environments
    from typing import Any

# Every unpack starts this file with a fresh interpreter: it imports what it needs and no more
# (argparse, re and tempfile cost more than the relocation of most environments).

__all__ = [
    "CompileError",
    "RelocationError",
    "check_destination",
    "compile_missing",
    "compile_sources",
    "find_added",
    "main",
    "placeholder",
    "relocate",
    "rewrite_text",
]

FORMAT = 1
PLACEHOLDER_UNIT = "/portenv_placehold"
"""The payload's prefix is this string repeated and cut to ``prefix_max`` bytes."""
SHEBANG_MAX = 127
"""The shortest kernel limit on a `#!` line still in use; longer lines get a trampoline."""
FORBIDDEN = '\n"$`\\'
USAGE = "usage: portenv-relocate [--to PREFIX] [--compile [--jobs N]] [--quiet]"
_SKIPPED = ".portenv"
"""The folder whose .py files are never imported (this file runs as a script, with -B)."""


def _is_python(interpreter: bytes) -> bool:
    """Whether a path's last component is python, python3, python3.12..."""
    return interpreter.rstrip(b"0123456789.").endswith(b"python")


class RelocationError(Exception):
    """The environment cannot be relocated to the requested path."""


class CompileError(Exception):
    """The bytecode compiler (the environment's python running pyc_worker.py) did not run."""


def check_destination(prefix: str, prefix_max: int) -> None:
    """Refuse a destination the environment cannot hold, before any file is touched."""
    if not prefix.startswith("/"):
        msg = f"destination is not an absolute path: {prefix}"
        raise RelocationError(msg)
    bad = sorted({c for c in prefix if c in FORBIDDEN})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        msg = f"destination holds characters a relocated env cannot use ({shown}): {prefix}"
        raise RelocationError(msg)
    if len(prefix.encode()) > prefix_max:
        msg = (
            f"destination is {len(prefix.encode())} bytes long, longer than the "
            f"{prefix_max} bytes this environment reserves: {prefix}"
        )
        raise RelocationError(msg)


def _trampoline(first_line: bytes) -> bytes | None:
    """A `/bin/sh` first line for a python script whose `#!` line the kernel cannot take."""
    interpreter = first_line[2:].strip()
    if b" " in interpreter and not _is_python(interpreter):
        interpreter = interpreter.split(b" ", 1)[0]
    if not _is_python(interpreter):
        return None
    return b"#!/bin/sh\n'''exec' \"" + interpreter + b'" "$0" "$@"\n' + b"' '''"


def rewrite_text(data: bytes, old: bytes, new: bytes) -> bytes:
    """Replace the prefix; turn a too-long or spaced python `#!` line into a trampoline."""
    data = data.replace(old, new)
    if not data.startswith(b"#!"):
        return data
    first, newline, rest = data.partition(b"\n")
    interpreter = first[2:].strip()
    too_long = len(first) > SHEBANG_MAX
    spaced = new in interpreter and b" " in new
    if too_long or spaced:
        trampoline = _trampoline(first)
        if trampoline is not None:
            return trampoline + newline + rest
    return data


def rewrite_region(segment: bytes, old: bytes, new: bytes, where: str) -> bytes:
    """The NUL-padded new content of one binary region."""
    text = segment.rstrip(b"\0")
    replaced = text.replace(old, new)
    if len(replaced) > len(segment):
        msg = (
            f"{where}: the new prefix needs {len(replaced)} bytes where {len(segment)} are reserved"
        )
        raise RelocationError(msg)
    return replaced + b"\0" * (len(segment) - len(replaced))


def _replace_file(path: str, content: bytes, mode: int | None = None) -> None:
    """Write `content` to a new file beside `path` and rename it over `path`, keeping the mode
    (`mode` for a `path` that does not exist yet)."""
    if mode is None:
        mode = os.stat(path).st_mode & 0o7777
    fd, tmp = _new_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _new_file_beside(path: str) -> tuple[int, str]:
    """Create a new, private file in `path`'s folder that did not exist before."""
    folder = os.path.dirname(path)
    for attempt in range(1000):
        tmp = os.path.join(folder, f".portenv-reloc-{os.getpid()}-{attempt}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), tmp
        except FileExistsError:
            continue
    msg = f"cannot create a new file in {folder}"
    raise OSError(msg)


class _Options:
    """What the command line asks for."""

    def __init__(self) -> None:
        self.to: str | None = None
        self.quiet = False
        self.compile = False
        self.jobs: str | None = None


_FLAGS = {"--quiet": "quiet", "--compile": "compile"}
_VALUES = {"--to": "to", "--jobs": "jobs", "-j": "jobs"}


def _parse(argv: list[str]) -> _Options:
    """The options; ValueError names what is wrong."""
    options = _Options()
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, sep, value = arg.partition("=")
        if arg in _FLAGS:
            setattr(options, _FLAGS[arg], True)
        elif name in _VALUES and (sep or args):
            setattr(options, _VALUES[name], value if sep else args.pop(0))
        elif name in _VALUES:
            raise ValueError("--to needs a path" if name == "--to" else f"{name} needs a number")
        else:
            msg = f"unexpected argument {arg!r}"
            raise ValueError(msg)
    if options.jobs is not None and not (options.jobs.isdigit() and int(options.jobs) > 0):
        msg = "--jobs needs a number of cores (1 or more)"
        raise ValueError(msg)
    return options


def _new_binary(path: str, regions: list[list[int]], old: bytes, new: bytes) -> bytes:
    with open(path, "rb") as stream:
        data = bytearray(stream.read())
    for offset, length in regions:
        segment = bytes(data[offset : offset + length])
        data[offset : offset + length] = rewrite_region(segment, old, new, f"{path}@{offset}")
    return bytes(data)


def compile_sources(root: str, sources: list[str], manifest: dict) -> None:  # type: ignore[type-arg]
    """Write the bytecode of each rewritten .py (`sources`, relative): the packed one is absent.

    The packer's worker (.portenv/pyc_worker.py) does it with the env's python: in this
    process when it is that python (an interpreter's start saved), in processes with a fixed
    hash seed for code whose bytes depend on it, so the same archive unpacked at the same
    place gives the same bytes. Best effort: where that python cannot run (`portenv unpack`
    of another machine's env), the sources are compiled when first imported, as without
    bytecode.
    """
    if not sources:
        return
    try:
        worker = _worker(root)
        if _runs_here(os.path.join(root, manifest["python"])):  # the unpacker's case
            holder = placeholder(int(manifest["prefix_max"]))
            sources = worker[1].compile_here(root, holder, sources)
        if sources:
            _compile(worker, root, sources, manifest, None)
    except CompileError:
        return


def _worker(root: str) -> tuple[str, Any]:
    """(path, module) of the bytecode worker: the one beside this file (the env's own, or
    portenv's when portenv runs this module), else the env's (an update's engine has none
    beside it). CompileError when neither is there or runs workers in parallel."""
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (here, os.path.join(root, _SKIPPED)):
        path = os.path.join(folder, "pyc_worker.py")
        spec = importlib.util.spec_from_file_location("portenv_pyc_worker", path)
        if not os.path.isfile(path) or spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True
        try:  # no .portenv/__pycache__: portenv-relocate runs without -B
            spec.loader.exec_module(module)
        finally:
            sys.dont_write_bytecode = writes
        if hasattr(module, "compile_in_parallel"):
            return path, module
    msg = f"{root} has no bytecode worker (.portenv/pyc_worker.py) this relocation can run"
    raise CompileError(msg)


def _compile(
    worker: tuple[str, Any],
    root: str,
    sources: list[str],
    manifest: dict,  # type: ignore[type-arg]
    jobs: int | None,
) -> dict:  # type: ignore[type-arg]
    """Compile `sources` (relative to `root`) with the env's python (the manifest's `python`,
    its `prefix_max` giving the placeholder), one worker per core; the counts of the
    workers. CompileError when they do not run."""
    path, module = worker
    python = os.path.join(root, manifest["python"])
    argv = [python, "-B", "-s", "-S", path, root, placeholder(int(manifest["prefix_max"]))]
    env = {"PYTHONHASHSEED": "0", "LC_ALL": "C"}  # frozensets iterate in one order
    try:
        counts, problems = module.compile_in_parallel(
            argv, root, sources, jobs or module.cores(), env
        )
    except OSError as exc:
        msg = f"cannot start {python}: {exc.strerror or exc}"
        raise CompileError(msg) from exc
    if problems:
        msg = f"{python} did not run the bytecode worker: {problems[0]}"
        raise CompileError(msg)
    return counts  # type: ignore[no-any-return]


def _runs_here(python: str) -> bool:
    """Whether this process is `python` (the env's, when the unpacker runs this file)."""
    return os.path.realpath(sys.executable) == os.path.realpath(python)


def _cache_tag(python: str) -> str:
    """The tag of the env's python in bytecode names (``cpython-312``): this process's when it
    is that python (the unpacker's case), else asked from it."""
    if _runs_here(python):
        tag = sys.implementation.cache_tag
    else:
        import subprocess

        query = [python, "-I", "-S", "-c", "import sys; print(sys.implementation.cache_tag)"]
        try:
            done = subprocess.run(query, capture_output=True, check=False, env={"LC_ALL": "C"})
        except OSError as exc:
            msg = f"cannot start {python}: {exc.strerror or exc}"
            raise CompileError(msg) from exc
        tag = done.stdout.decode("ascii", "replace").strip() if done.returncode == 0 else ""
        if not tag:
            lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
            msg = f"{python} does not run: {lines[-1] if lines else f'exit {done.returncode}'}"
            raise CompileError(msg)
    if not tag:
        msg = f"{python} writes no bytecode (it has no cache tag)"
        raise CompileError(msg)
    return tag


def compile_missing(root: str, jobs: int | None = None, python: str | None = None) -> dict:  # type: ignore[type-arg]
    """--compile: write the checked-hash bytecode of every .py of the env at `root` that has
    none, in parallel; the workers' counts (a source that does not compile is counted as
    failed: Python reports it when it is imported). CompileError when the compiler does
    not run. `python` (relative) is for an env without a relocation manifest (pixi-pack's).
    """
    manifest: dict = _load(root) if python is None else {"python": python, "prefix_max": 255}  # type: ignore[type-arg]
    worker = _worker(root)
    tag = _cache_tag(os.path.join(root, manifest["python"]))
    sources = worker[1].missing_bytecode(root, tag, _SKIPPED)
    return _compile(worker, root, sources, manifest, jobs) if sources else {}


def placeholder(prefix_max: int) -> str:
    """The prefix every file of the payload holds (docs/format.md)."""
    return (PLACEHOLDER_UNIT * (prefix_max // len(PLACEHOLDER_UNIT) + 1))[:prefix_max]


def _changed_files(root: str, known: set[str]) -> list[str]:
    """Regular files not in `known` whose mtime is not 0, i.e. not as the payload left them."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root and ".portenv" in dirnames:
            dirnames.remove(".portenv")
        for name in filenames:
            path = os.path.join(dirpath, name)
            relative = os.path.relpath(path, root)
            if name.endswith(".pyc") or relative in known:
                continue  # bytecode: Python puts the real path into what it loads
            st = os.lstat(path)
            if st.st_mtime != 0 and stat.S_ISREG(st.st_mode):
                found.append(relative)
    return sorted(found)


def find_added(root: str, known: set[str], old: bytes) -> tuple[list[str], list[str]]:
    """(text files, binary files) not in the manifest that hold `old`, changed since unpacking."""
    import mmap

    text: list[str] = []
    binary: list[str] = []
    for relative in _changed_files(root, known):
        with open(os.path.join(root, relative), "rb") as stream:
            if os.fstat(stream.fileno()).st_size < len(old):
                continue
            with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
                if data.find(old) != -1:
                    (binary if data.find(b"\0") != -1 else text).append(relative)
    return text, binary


def _load(root: str) -> dict:  # type: ignore[type-arg]
    with open(os.path.join(root, ".portenv", "manifest.json"), encoding="utf-8") as stream:
        manifest = json.load(stream)
    if manifest.get("format") != FORMAT:
        msg = f"unknown relocation manifest format: {manifest.get('format')!r}"
        raise RelocationError(msg)
    return manifest  # type: ignore[no-any-return]


def relocate(root: str, prefix: str, warn: list[str] | None = None) -> int:
    """Rewrite the env at `root` so that it works at `prefix`. Returns the files rewritten.

    All binary regions are checked before the first file is written. Binary files added
    after unpacking that hold the old prefix are listed in `warn` (they are left as they are).
    """
    manifest = _load(root)
    old = manifest["prefix"].encode()
    new = prefix.encode()
    if old == new:
        return 0
    check_destination(prefix, int(manifest["prefix_max"]))
    binaries = [f for f in manifest["files"] if f["mode"] == "binary"]
    for entry in binaries:  # validate every region first: nothing is written on refusal
        _new_binary(os.path.join(root, entry["path"]), entry["regions"], old, new)
    if manifest["prefix"] != placeholder(int(manifest["prefix_max"])):
        known = {f["path"] for f in manifest["files"]}
        text, binary = find_added(root, known, old)
        manifest["files"] += [{"path": p, "mode": "text"} for p in text]
        if warn is not None:
            warn += binary
    sources = []
    for entry in manifest["files"]:
        path = os.path.join(root, entry["path"])
        if entry["mode"] == "binary":
            content = _new_binary(path, entry["regions"], old, new)
        else:
            with open(path, "rb") as stream:
                content = rewrite_text(stream.read(), old, new)
            if path.endswith(".py"):
                sources.append(entry["path"])
        _replace_file(path, content)
    compile_sources(root, sources, manifest)
    manifest["prefix"] = prefix
    _replace_file(
        os.path.join(root, ".portenv", "manifest.json"),
        (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode(),
    )
    return len(manifest["files"])


def _failed(exc: BaseException, hint: str, what: str = "relocation") -> int:
    """One error line and one hint line, as every portenv tool reports a failure."""
    print(f"error: {what} failed: {exc}", file=sys.stderr)
    print(f"  hint: {hint}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """`relocate.py --to PREFIX [--compile]`: relocate the env this file belongs to."""
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        print(f"{USAGE}\n\n{__doc__.splitlines()[0]}")
        return 0
    try:
        options = _parse(args)
    except ValueError as exc:
        print(f"{USAGE}\nerror: {exc}", file=sys.stderr)
        return 2
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = options.to or os.path.realpath(root)
    binary: list[str] = []
    try:
        count = relocate(root, target, binary)
        counts = compile_missing(root, int(options.jobs or 0)) if options.compile else {}
    except RelocationError as exc:
        return _failed(exc, "choose a shorter or plainer destination path")
    except CompileError as exc:
        hint = "leave out --compile: Python then compiles each module when it is first imported"
        return _failed(exc, hint, "compiling the bytecode")
    except OSError as exc:
        return _failed(exc, "check the free space and permissions where the environment is")
    except (ValueError, KeyError) as exc:
        return _failed(exc, "its .portenv/manifest.json is damaged: unpack the archive again")
    for path in binary:
        print(
            f"warning: {path} was added after unpacking and holds the old prefix in a binary "
            "file, which cannot be rewritten safely: reinstall it",
            file=sys.stderr,
        )
    if not options.quiet:
        print(f"portenv: relocated {count} files to {target}", file=sys.stderr)
        if options.compile:
            done = counts.get("compiled", 0) + counts.get("reused", 0)
            failed = counts.get("failed", 0)
            print(f"portenv: compiled {done} modules ({failed} did not compile)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

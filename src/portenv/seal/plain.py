"""What a plain archive changes in a sealed prefix, so that nothing in it names a path.

A plain archive (`pack --format tar.gz|zip`) is extracted by tools that rewrite nothing
(Spark's `--archives`, Ray's `working_dir`, `tar`, `unzip`), at a path nobody knows in advance.
So every file the relocation manifest lists must become one that finds its own location:

* a Python launcher (a `#!` line or installer's / rattler's `/bin/sh` + `'''exec'` polyglot
  naming the env's interpreter) runs the interpreter next to its own real path instead;
* `bin/activate` finds the file being sourced (target/activate_locate.sh);
* a conda python's build configuration computes the prefix from where it is, as the
  conda-free source's does (stage.cpython_sysconfig): `_sysconfigdata_*.py` from
  `sys.base_prefix`, `pythonX.Y-config` from `$0`, `.pc` files from `${pcfiledir}`, and the
  `config-X.Y/Makefile` from its own path;
* the relocation machinery (`bin/portenv-relocate`, `.portenv/manifest.json` and the scripts
  it runs) is left out: there is nothing to relocate.

Anything else that holds the placeholder (a binary with a compiled-in prefix, a config file)
would be broken after extraction, so the pack is refused and the files named. The sealed
prefix itself is never changed: it may be the cached one (seal.cache), and the regular
formats still relocate it on the target.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from portenv.errors import RelocationError, StageError
from portenv.model import RelocationManifest
from portenv.seal.files import target_file
from portenv.stage.cpython_sysconfig import (
    config_script_text,
    pkgconfig_text,
    prefix_pattern,
    sysconfigdata_anywhere,
)

__all__ = [
    "ACTIVATE",
    "DROPPED",
    "PlainChanges",
    "compile_rewritten",
    "makefile_text",
    "plain_activate",
    "plain_changes",
    "relative_launcher",
    "self_locating",
]

ACTIVATE = "bin/activate"
DROPPED = frozenset(
    {
        "bin/portenv-relocate",
        ".portenv/manifest.json",
        ".portenv/relocate.py",
        ".portenv/pyc_worker.py",
    }
)
"""Files only a relocation uses."""
SHOWN = 5
"""Files named in a refusal; the rest are counted."""
_PREFIX_LINE = (
    "# The path below is rewritten whenever the environment is relocated.\n"
    'PORTENV_PREFIX="@PREFIX@"\n'
)
_SH_EXEC = re.compile(rb"\A#!/bin/sh\n'''exec' (\"[^\"\n]*\"|[^\s\"]+) (\"\$0\" \"\$@\"[^\n]*)\n")
_SHEBANG = re.compile(rb"\A#![ \t]*([^\s]+)([ \t][^\n]*)?\n")
_UNSAFE = re.compile(r"[\"$`\\\n']")


def makefile_text(text: str, prefix: str) -> str:
    """CPython's config Makefile with `prefix` computed from the Makefile's own path
    (lib/pythonX.Y/config-*/Makefile, three folders down) and every other use going through it.

    >>> makefile_text("prefix= /ph\\nLIBDIR= /ph/lib\\n", "/ph").splitlines()
    ['prefix :=\\t$(abspath $(dir $(lastword $(MAKEFILE_LIST)))../../..)', 'LIBDIR= $(prefix)/lib']
    """
    pattern = prefix_pattern(prefix)
    lines = []
    for line in text.splitlines(keepends=True):
        if re.match(r"prefix\s*=", line):
            line = "prefix :=\t$(abspath $(dir $(lastword $(MAKEFILE_LIST)))../../..)\n"
        lines.append(pattern.sub("$(prefix)", line))
    return "".join(lines)


_BUILD_FILES: tuple[tuple[str, Callable[[str, str, str], str | None]], ...] = (
    ("lib/python3*/_sysconfigdata_*.py", lambda t, p, f: sysconfigdata_anywhere(t, p, Path(f))),
    ("bin/python3*-config", lambda t, p, _f: config_script_text(t, p)),
    ("lib/pkgconfig/*.pc", lambda t, p, _f: pkgconfig_text(t, p)),
    ("lib/python3*/config-*/Makefile", lambda t, p, _f: makefile_text(t, p)),
)
"""A python's build configuration (path pattern, rewrite) that can name its own location."""


def self_locating(data: bytes, relative: str, prefix: str) -> bytes | None:
    """`data` made to find its own location (a launcher, or a build configuration file), or
    None when it cannot be: then it would need relocating."""
    new = relative_launcher(data, relative, prefix)
    if new is None:
        for pattern, rewrite in _BUILD_FILES:
            if fnmatch.fnmatchcase(relative, pattern):
                try:
                    text = rewrite(data.decode("utf-8", "surrogateescape"), prefix, relative)
                except StageError:  # not the shape CPython writes: left as it is, so refused
                    text = None
                new = None if text is None else text.encode("utf-8", "surrogateescape")
                break
    if new is None or prefix.encode() in new:
        return None
    return new


@dataclass(frozen=True)
class PlainChanges:
    """The new content of the files that named the prefix, the files left out, and the
    bytecode of the rewritten sources (which had none: they held the placeholder)."""

    replaced: dict[str, bytes]
    dropped: frozenset[str]
    added: dict[str, bytes] = field(default_factory=dict)


def compile_rewritten(
    root: Path, manifest: RelocationManifest, sources: dict[str, bytes]
) -> dict[str, bytes]:
    """Checked-hash .pyc files (relative path -> bytes) of rewritten `.py` sources, compiled
    as the seal compiles every other (target/pyc_worker.py) by the env's own python; none when
    it does not run here (a foreign platform): Python then compiles them on first import."""
    wanted = {path: data for path, data in sources.items() if path.endswith(".py")}
    if not wanted:
        return {}
    with tempfile.TemporaryDirectory(prefix="portenv-plain-") as scratch:
        for path, data in wanted.items():
            (Path(scratch) / path).parent.mkdir(parents=True, exist_ok=True)
            (Path(scratch) / path).write_bytes(data)
        worker = target_file("pyc_worker.py")
        argv = [
            str(root / manifest.python),
            "-B",
            "-s",
            "-S",
            "-c",
            worker,
            scratch,
            manifest.prefix,
        ]
        try:
            subprocess.run(
                argv,
                input="\0".join(wanted).encode("utf-8", "surrogateescape"),
                capture_output=True,
                env={"PYTHONHASHSEED": "0", "LC_ALL": "C"},
                check=True,
                timeout=120,
            )
        except (OSError, subprocess.SubprocessError):
            return {}
        found = {}
        for pyc in sorted(Path(scratch).rglob("__pycache__/*.pyc")):
            found[str(pyc.relative_to(scratch))] = pyc.read_bytes()
        return found


def _is_python(path: bytes) -> bool:
    return path.rstrip(b"0123456789.").endswith(b"/python") or path.endswith(b"/pypy3")


def _here(relative: str, interpreter: str) -> str | None:
    """The sh expression of `interpreter` (env-relative) seen from the launcher `relative`."""
    rel = os.path.relpath(interpreter, os.path.dirname(relative) or ".")
    if _UNSAFE.search(rel):
        return None
    return f'"$(dirname -- "$(realpath "$0")")/{rel}"'


def relative_launcher(data: bytes, relative: str, prefix: str) -> bytes | None:
    """`data` (the launcher at `relative`) running the interpreter beside its own real path.

    None when it is not a launcher of the env's python, or when the prefix appears anywhere
    else in it. The interpreter is found from the script's real path (`realpath`, in busybox
    and coreutils), so a symlink to the script elsewhere still runs this env's python.

    >>> print(relative_launcher(b"#!/ph/bin/python3.12\\nprint(1)\\n", "bin/x", "/ph").decode())
    #!/bin/sh
    '''exec' "$(dirname -- "$(realpath "$0")")/python3.12" "$0" "$@"
    ' '''
    print(1)
    <BLANKLINE>
    """
    head = prefix.encode() + b"/"
    found = _SH_EXEC.match(data)
    if found is not None:
        interpreter, rest = found.group(1).strip(b'"'), data[found.end() :]
        after = b" " + found.group(2) + b"\n"
    else:
        shebang = _SHEBANG.match(data)
        if shebang is None:
            return None
        interpreter, rest = shebang.group(1), data[shebang.end() :]
        after = (shebang.group(2) or b"") + b" \"$0\" \"$@\"\n' '''\n"
    if not interpreter.startswith(head) or not _is_python(interpreter) or head[:-1] in rest:
        return None
    expression = _here(relative, interpreter[len(head) :].decode("utf-8", "surrogateescape"))
    if expression is None:
        return None
    return b"#!/bin/sh\n'''exec' " + expression.encode() + after + rest


def plain_activate() -> bytes:
    """bin/activate for a plain archive: the shipped one, locating itself instead of being
    rewritten."""
    template = target_file("activate.sh")
    if _PREFIX_LINE not in template:
        msg = "activate.sh has no prefix line to replace"
        raise AssertionError(msg)
    return template.replace(_PREFIX_LINE, target_file("activate_locate.sh")).encode()


def plain_changes(
    root: Path, manifest: RelocationManifest, *, bytecode: bool = True
) -> PlainChanges:
    """What to write instead of the files that hold the placeholder, or a refusal naming them."""
    replaced: dict[str, bytes] = {}
    stuck: list[str] = []
    for entry in manifest.files:
        if entry.path in DROPPED:
            continue
        if entry.path == ACTIVATE:
            replaced[entry.path] = plain_activate()
            continue
        new = None
        if entry.mode == "text":
            new = self_locating((root / entry.path).read_bytes(), entry.path, manifest.prefix)
        if new is None:
            stuck.append(f"{entry.path} ({entry.mode})")
        else:
            replaced[entry.path] = new
    if stuck:
        more = f" and {len(stuck) - SHOWN} more" if len(stuck) > SHOWN else ""
        msg = (
            f"{len(stuck)} files of the environment name its install path, which a plain"
            f" archive cannot rewrite: {', '.join(stuck[:SHOWN])}{more}"
        )
        raise RelocationError(
            msg,
            hint="pack it as env.sh or env.tar (relocated when unpacked), or leave out the"
            " packages that compile their prefix in (`portenv inspect` shows who owns a file)",
        )
    added = compile_rewritten(root, manifest, replaced) if bytecode else {}
    return PlainChanges(replaced, DROPPED, added)

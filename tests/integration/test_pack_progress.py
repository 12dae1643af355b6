"""What `pack` prints: bars on a terminal, plain lines in a pipe, nothing with --quiet.

The machine-readable line (the sha256 and the path, on stdout) is the same in every case.
"""

from __future__ import annotations

import hashlib
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

PHASES = ("fetching", "staging", "sealing", "compressing")
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
"""A terminal control sequence (colours, cursor moves, line erases)."""


def pack_argv(project: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    """A pack that runs every phase (--no-reuse: the sealed-prefix cache would skip two)."""
    argv = [sys.executable, "-m", "portenv", "pack", str(project), "-o", str(out)]
    return [*argv, "--use-cache", str(cache), "--no-reuse", *extra]


def plain_env() -> dict[str, str]:
    """This environment without the variables that make rich treat a pipe as a terminal."""
    forcing = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
    return {k: v for k, v in os.environ.items() if k not in forcing}


def sha256_line(out: Path) -> str:
    return f"{hashlib.sha256(out.read_bytes()).hexdigest()}  {out}\n"


def test_in_a_pipe_no_bar_is_drawn(core_project: Path, package_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "env.tar"
    argv = pack_argv(core_project, out, package_cache)
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=plain_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout == sha256_line(out)
    assert "\x1b" not in done.stderr and "\r" not in done.stderr, "no terminal control codes"
    assert done.stderr.startswith(f"wrote {out} ("), "the note is a plain line"
    assert not [p for p in PHASES if p in done.stderr], "no progress in a pipe"


def test_quiet_prints_only_the_hash(
    core_project: Path, package_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "env.tar"
    argv = pack_argv(core_project, out, package_cache, "--quiet", "--sbom")
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=plain_env())
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout == sha256_line(out)
    assert out.with_name("env.tar.cdx.json").is_file()


def run_on_a_terminal(argv: list[str]) -> tuple[int, str, str]:
    """Run `argv` with stderr on a pseudo-terminal; its exit code, stdout and terminal output."""
    main, child = pty.openpty()
    env = {**plain_env(), "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=child, env=env, text=False)
    os.close(child)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: the child side is closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    stdout, _ = process.communicate(timeout=600)
    reader.join(timeout=60)
    os.close(main)
    return process.returncode, stdout.decode(), b"".join(chunks).decode("utf-8", "replace")


def test_on_a_terminal_the_phases_show(
    core_project: Path, package_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "env.tar"
    code, stdout, screen = run_on_a_terminal(pack_argv(core_project, out, package_cache))
    assert code == 0, screen
    assert stdout == sha256_line(out), "the hash line does not change on a terminal"
    assert CONTROL.search(screen), "rich draws with terminal control codes"
    text = CONTROL.sub("", screen)
    for phase in PHASES:
        assert f"done {phase}" in text, (phase, text[-2000:])
    assert re.search(r"done compressing, [0-9.]+ [kM]B in [0-9.]+ s", text), text[-2000:]
    assert f"wrote {out}" in text

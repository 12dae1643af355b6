"""The sh unpacker as a runner: `sh env.sh --run CMD`, a file packed with an entry, the cache.

Each case runs under dash, bash and busybox sh (busybox's applets first on PATH). The fake
environment of tests/support/unpacksh.py gets a `bin/tool` script; the cache is a folder of the
test's own ($PORTENV_CACHE, or a HOME or TMPDIR there).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.unpacksh import (
    Env,
    Shell,
    assert_relocated,
    build_sh,
    build_tar,
    standalone_unpacker,
    wait_for_mark,
)

TOOL = b"""#!/bin/sh
printf 'tool:%s\\n' "$@"
exit 7
"""
RELOCATE = """\
import os
import sys
import time
from pathlib import Path

here = Path(__file__).resolve().parent
(here / "relocated-to").write_text(sys.argv[2])
(here / "relocated-in").write_text(str(here.parent))
count = os.environ.get("PORTENV_TEST_COUNT")
if count:
    with open(count, "a") as out:
        out.write("relocated\\n")
mark = os.environ.get("PORTENV_TEST_MARK")
if mark:
    Path(mark).write_text("relocating")
    time.sleep(float(os.environ.get("PORTENV_TEST_SLEEP", "60")))
"""
SHOW = "import json, os, sys; print(json.dumps([sys.argv[1:], os.getpid(), dict(os.environ)]))"
TRICKY = ["a b", "", "*", "$HOME", "x\ny", "-o", "--run", "'", '"', "\\"]


def env(data: bytes = b"hello\n") -> Env:
    return Env(relocate=RELOCATE, data=data, commands=(("tool", TOOL),))


@dataclass
class Runner:
    """One shell, a folder, and the files under test in it."""

    shell: Shell
    tmp: Path

    @property
    def cache(self) -> Path:
        return self.tmp / "cache"

    def write(self, name: str, entry: str = "", data: bytes = b"hello\n") -> Path:
        path = self.tmp / name
        path.write_bytes(build_sh(build_tar(env(data)), entry))
        path.chmod(0o755)
        return path

    def environ(self, **extra: str | None) -> dict[str, str]:
        base = {**os.environ, "PATH": self.shell.path, "PORTENV_CACHE": str(self.cache)}
        for key in ("PORTENV", "LC_ALL", "XDG_CACHE_HOME", "TMPDIR"):
            base.pop(key, None)
        base.update(extra)  # type: ignore[arg-type]
        return {k: v for k, v in base.items() if v is not None}

    def run(
        self, file: Path, *args: str, stdin: str | None = None, **extra: str | None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.shell.argv, str(file), *args],
            capture_output=True,
            text=True,
            input=stdin,
            env=self.environ(**extra),
            cwd=self.tmp,
            timeout=120,
            check=False,
        )

    def entries(self, root: Path | None = None) -> list[str]:
        root = root or self.cache
        return sorted(os.listdir(root)) if root.is_dir() else []


@pytest.fixture
def rn(shell: Shell, tmp_path: Path) -> Runner:
    return Runner(shell, tmp_path)


def key_of(file: Path) -> str:
    found = re.search(rb"^PORTENV_PAYLOAD_SHA256=([0-9a-f]{64})$", file.read_bytes(), re.M)
    assert found is not None
    return found.group(1).decode()


def shown(stdout: str) -> tuple[list[str], int, dict[str, str]]:
    argv, pid, environ = json.loads(stdout)
    return argv, pid, environ


# --------------------------------------------------------------------------- running


def test_entry_first_run_unpacks_then_warm_runs_from_the_cache(rn: Runner) -> None:
    tool = rn.write("tool.sh", "tool --flag")
    first = rn.run(tool, "a b", "")
    assert (first.returncode, first.stdout, first.stderr) == (
        7,
        "tool:--flag\ntool:a b\ntool:\n",
        "",
    )
    key = key_of(tool)
    entry = rn.cache / key
    assert rn.entries() == [key]
    assert_relocated(entry)
    assert (entry / ".portenv" / "cache-ready").read_text() == f"file={tool}\n"
    assert oct(rn.cache.stat().st_mode & 0o777) == "0o700"
    # a warm start runs what the cache holds: change it, and no unpack puts it back
    (entry / "bin" / "tool").write_bytes(b'#!/bin/sh\necho warm "$@"\n')
    warm = rn.run(tool, "x")
    assert (warm.returncode, warm.stdout, warm.stderr) == (0, "warm --flag x\n", "")
    assert rn.entries() == [key]


@pytest.mark.parametrize("warm", [False, True], ids=["first", "warm"])
def test_run_passes_arguments_stdin_status_and_pid(rn: Runner, warm: bool) -> None:
    file = rn.write("env.sh")
    if warm:
        assert rn.run(file, "--run", "python", "-c", "pass").returncode == 0
    code = (
        "import sys; print(sys.stdin.read().upper(), end=''); sys.stderr.write('e'); sys.exit(42)"
    )
    res = rn.run(file, "--run", "python", "-c", code, stdin="hello\n")
    assert (res.returncode, res.stdout, res.stderr) == (42, "HELLO\n", "e")
    res = rn.run(file, "--run", "python", "-c", SHOW, *TRICKY)
    assert res.returncode == 0, res.stderr
    assert shown(res.stdout)[0] == TRICKY


def test_the_command_replaces_the_shell(rn: Runner) -> None:
    """exec: the command has the pid the caller started, and a signal reaches it."""
    file = rn.write("env.sh")
    for _ in range(2):  # the first run execs too, after unpacking
        proc = subprocess.Popen(
            [*rn.shell.argv, str(file), "--run", "python", "-c", SHOW],
            stdout=subprocess.PIPE,
            env=rn.environ(),
            text=True,
        )
        out, _ = proc.communicate(timeout=60)
        assert shown(out)[1] == proc.pid
    code = "import os, sys, time; print('up', flush=True); time.sleep(60)"
    proc = subprocess.Popen(
        [*rn.shell.argv, str(file), "--run", "python", "-c", code],
        stdout=subprocess.PIPE,
        env=rn.environ(),
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM


@pytest.mark.parametrize("lc_all", [None, "C.UTF-8"], ids=["unset", "set"])
@pytest.mark.parametrize("warm", [False, True], ids=["first", "warm"])
def test_the_environment_is_the_users(rn: Runner, lc_all: str | None, warm: bool) -> None:
    """Variables the unpacker uses for itself (LC_ALL=C, NAME, TMP, F...) are the user's again."""
    file = rn.write("env.sh")
    if warm:
        assert rn.run(file, "--run", "python", "-c", "pass").returncode == 0
    users = {"TMP": "/tmp/u", "NAME": "me", "F": "f", "DIR": "d", "DEST": "x", "NL": "n", "K": "k"}
    res = rn.run(file, "--run", "python", "-c", SHOW, LC_ALL=lc_all, **users)
    assert res.returncode == 0, res.stderr
    (rn.tmp / "plain.sh").write_text('exec "$@"\n')  # what any sh wrapper passes on
    plain = rn.run(
        rn.tmp / "plain.sh",
        str(rn.cache / key_of(file) / "bin" / "python"),
        "-c",
        SHOW,
        LC_ALL=lc_all,
        **users,
    )
    got, want = shown(res.stdout)[2], shown(plain.stdout)[2]
    got.pop("_", None), want.pop("_", None)  # bash's: the path of the last command
    assert got == want
    assert got.get("LC_ALL") == lc_all


def test_run_finds_commands_in_bin_then_as_given(rn: Runner) -> None:
    file = rn.write("env.sh")
    assert rn.run(file, "--run", "tool", "x").stdout == "tool:x\n"
    res = rn.run(file, "--run", "echo", "from", "PATH")
    assert (res.returncode, res.stdout) == (0, "from PATH\n")
    (rn.tmp / "mine.sh").write_text('#!/bin/sh\necho mine "$1"\n')
    (rn.tmp / "mine.sh").chmod(0o755)
    assert rn.run(file, "--run", "./mine.sh", "y").stdout == "mine y\n"
    res = rn.run(file, "--run", "no-such-command")
    assert res.returncode == 127
    assert "no-such-command" in res.stderr


def test_standalone_unpacker_runs_an_env_tar(rn: Runner) -> None:
    archive = rn.tmp / "env.tar"
    archive.write_bytes(build_tar(env()))
    argv = [str(standalone_unpacker()), str(archive), "--run", "tool", "t"]
    for _ in range(2):
        res = rn.run(Path(argv[0]), *argv[1:])
        assert (res.returncode, res.stdout) == (7, "tool:t\n"), res.stderr
    assert len(rn.entries()) == 1


def test_run_needs_a_command(rn: Runner) -> None:
    res = rn.run(rn.write("env.sh"), "--run")
    assert res.returncode == 2
    assert res.stderr.splitlines()[0] == "error: --run needs a command"
    res = rn.run(rn.write("env.sh"), "-o", "x", "--run", "python")
    assert res.returncode == 2
    assert res.stderr.splitlines()[0].startswith("error: --run comes first")


# --------------------------------------------------------------------------- atomic, concurrent


def test_concurrent_first_runs_make_one_entry(rn: Runner) -> None:
    tool = rn.write("tool.sh", "tool")
    count = rn.tmp / "count"
    extra = {
        "PORTENV_TEST_COUNT": str(count),
        "PORTENV_TEST_MARK": str(rn.tmp / "mark"),
        "PORTENV_TEST_SLEEP": "1",
    }
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda n: rn.run(tool, str(n), **extra), range(6)))
    assert [(r.returncode, r.stdout, r.stderr) for r in results] == [
        (7, f"tool:{n}\n", "") for n in range(6)
    ]
    assert count.read_text() == "relocated\n"
    assert rn.entries() == [key_of(tool)]


def test_killed_first_run_leaves_nothing_trusted(rn: Runner) -> None:
    tool = rn.write("tool.sh", "tool")
    mark = rn.tmp / "mark"
    proc = subprocess.Popen(
        [*rn.shell.argv, str(tool)],
        env=rn.environ(PORTENV_TEST_MARK=str(mark)),
        start_new_session=True,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_mark(proc, mark)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    key = key_of(tool)
    left = rn.entries()
    assert f".portenv-lock.{key}" in left and any(e.startswith(".portenv-tmp.") for e in left)
    assert not list(rn.cache.rglob("cache-ready"))
    res = rn.run(tool, "again")
    assert (res.returncode, res.stdout) == (7, "tool:again\n"), res.stderr
    assert rn.entries() == [key]


def test_an_entry_without_its_marker_is_made_again(rn: Runner) -> None:
    """Killed between the rename and the marker: the entry is complete but not trusted."""
    tool = rn.write("tool.sh", "tool")
    assert rn.run(tool).returncode == 7
    entry = rn.cache / key_of(tool)
    (entry / ".portenv" / "cache-ready").unlink()
    (entry / "bin" / "tool").write_bytes(b"#!/bin/sh\necho planted\n")
    res = rn.run(tool, "z")
    assert (res.returncode, res.stdout) == (7, "tool:z\n")
    assert rn.entries() == [entry.name]


# --------------------------------------------------------------------------- safety


@pytest.mark.parametrize("where", ["root", "entry"])
@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757], ids=["world", "group", "other"])
def test_a_cache_others_can_write_to_is_refused(rn: Runner, where: str, mode: int) -> None:
    tool = rn.write("tool.sh", "tool")
    assert rn.run(tool).returncode == 7
    folder = rn.cache if where == "root" else rn.cache / key_of(tool)
    folder.chmod(mode)
    res = rn.run(tool, "x")
    assert (res.returncode, res.stdout) == (5, "")
    assert res.stderr.splitlines() == [
        f"error: the cache folder {folder} is writable by other users",
        f"  hint: nothing was run from it; chmod go-w {folder}, or set PORTENV_CACHE to a "
        "folder that only you can write to",
    ]


@pytest.mark.parametrize("where", ["root", "entry"])
def test_a_cache_of_another_user_is_refused(rn: Runner, where: str) -> None:
    tool = rn.write("tool.sh", "tool")
    if where == "entry":
        assert rn.run(tool).returncode == 7
    folder = rn.cache if where == "root" else rn.cache / key_of(tool)
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chown(folder, 4321, 4321)
    res = rn.run(tool, "x")
    assert (res.returncode, res.stdout) == (5, "")
    assert res.stderr.splitlines()[0] == (
        f"error: the cache folder {folder} is not yours (another user owns it)"
    )


def test_without_home_a_private_folder_in_tmpdir(rn: Runner) -> None:
    tool = rn.write("tool.sh", "tool")
    tmpdir = rn.tmp / "t"
    tmpdir.mkdir(mode=0o1777)
    tmpdir.chmod(0o1777)
    extra: dict[str, str | None] = {"PORTENV_CACHE": None, "HOME": None, "TMPDIR": str(tmpdir)}
    for _ in range(2):
        res = rn.run(tool, "h", **extra)
        assert (res.returncode, res.stdout) == (7, "tool:h\n"), res.stderr
    root = tmpdir / f"portenv-cache-{os.getuid()}"
    assert oct(root.stat().st_mode & 0o777) == "0o700"
    assert rn.entries(root) == [key_of(tool)]
    shutil.rmtree(root)
    root.mkdir(mode=0o700)
    os.chown(root, 4321, 4321)  # planted by another user before us
    res = rn.run(tool, "h", **extra)
    assert res.returncode == 5
    assert (
        res.stderr.splitlines()[0]
        == f"error: the cache folder {root} is not yours (another user owns it)"
    )


def test_home_and_xdg_cache(rn: Runner) -> None:
    tool = rn.write("tool.sh", "tool")
    home = rn.tmp / "home"
    home.mkdir()
    assert rn.run(tool, PORTENV_CACHE=None, HOME=str(home)).returncode == 7
    assert rn.entries(home / ".cache" / "portenv") == [key_of(tool)]
    xdg = rn.tmp / "xdg"
    assert rn.run(tool, PORTENV_CACHE=None, HOME=str(home), XDG_CACHE_HOME=str(xdg)).returncode == 7
    assert rn.entries(xdg / "portenv") == [key_of(tool)]


# --------------------------------------------------------------------------- bad input


def test_truncated_file_runs_and_caches_nothing(rn: Runner) -> None:
    tool = rn.write("tool.sh", "tool")
    data = tool.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 600):
        tool.write_bytes(data[:cut])
        res = rn.run(tool, "x")
        assert (res.returncode, res.stdout) == (3, ""), res.stderr
        assert "is truncated or damaged" in res.stderr.splitlines()[0]
        assert not rn.cache.exists()


def test_damaged_payload_runs_and_caches_nothing(rn: Runner) -> None:
    tool = rn.write("tool.sh", "tool")
    data = bytearray(tool.read_bytes())
    offset = int(re.findall(rb"PORTENV_EMBEDDED_OFFSET=(\d{10})", bytes(data))[0])
    data[offset + 5120 + 100] ^= 0xFF
    tool.write_bytes(bytes(data))
    res = rn.run(tool, "x")
    assert (res.returncode, res.stdout) == (7, "")
    assert res.stderr.startswith(f"error: the payload of {tool} is damaged (sha256 ")
    assert rn.entries() == []


def test_header_and_meta_must_agree(rn: Runner) -> None:
    tool = rn.write("tool.sh", "tool")
    key = key_of(tool)
    other = key[:-1] + ("0" if key[-1] != "0" else "1")
    tool.write_bytes(tool.read_bytes().replace(key.encode(), other.encode(), 1))
    res = rn.run(tool)
    assert res.returncode == 3
    assert res.stderr.splitlines()[0] == (
        f"error: {tool} is damaged: its header and its meta block disagree on the payload's sha256"
    )
    assert rn.entries() == []


def test_full_disk_is_the_unpack_error(rn: Runner) -> None:
    file = rn.tmp / "big.sh"
    file.write_bytes(build_sh(build_tar(env(), meta={"unpacked_kib": str(10**15)}), "tool"))
    res = rn.run(file)
    assert res.returncode == 6
    assert re.fullmatch(
        r"error: .* has \d+ KiB free, the environment needs 10{15} KiB", res.stderr.splitlines()[0]
    )
    assert not rn.cache.exists()


# --------------------------------------------------------------------------- PORTENV=...


def test_portenv_unpack_does_what_env_sh_does(rn: Runner) -> None:
    tool = rn.write("tool.sh", "tool")
    res = rn.run(tool, "-o", str(rn.tmp / "out"), PORTENV="unpack")
    assert res.returncode == 0, res.stderr
    assert (
        res.stderr.splitlines()[-1] == f"portenv: unpacked 10 files into {rn.tmp / 'out' / 'env'}"
    )
    assert_relocated(rn.tmp / "out" / "env")
    assert not rn.cache.exists()
    res = rn.run(tool, PORTENV="info")
    assert res.returncode == 0
    assert res.stdout.splitlines()[0] == "format=1"
    assert res.stdout.splitlines()[-1] == "entry=tool"
    res = rn.run(tool, "-o", str(rn.tmp / "o2"), PORTENV="check")
    assert res.returncode == 0 and res.stderr.startswith("portenv: all checks passed")
    res = rn.run(tool, "--run", "tool", "via", PORTENV="unpack")
    assert (res.returncode, res.stdout) == (7, "tool:via\n")
    res = rn.run(tool, PORTENV="help")
    assert res.returncode == 0 and "PORTENV=unpack" in res.stdout and "--run CMD" in res.stdout
    res = rn.run(tool, PORTENV="bogus")
    assert res.returncode == 2
    assert res.stderr.splitlines()[0] == "error: unknown PORTENV=bogus"


def test_list_cache_and_prune(rn: Runner) -> None:
    old = rn.write("old.sh", "tool", data=b"v1\n")
    new = rn.write("new.sh", "tool", data=b"v2\n")
    assert rn.run(old).returncode == rn.run(new).returncode == 7
    (rn.cache / f".portenv-tmp.{key_of(old)}.999999999").mkdir()  # a dead first run's leftover
    (rn.cache / f".portenv-lock.{key_of(new)}").mkdir()  # killed after its marker: a stale lock
    res = rn.run(new, PORTENV="list-cache")
    lines = sorted(res.stdout.splitlines())
    assert res.returncode == 0 and len(lines) == 2, res
    assert {line.split()[0] for line in lines} == {key_of(old), key_of(new)}
    assert f"{key_of(new)} " in res.stdout and f"ready {new} (this file)" in res.stdout
    res = rn.run(new, PORTENV="prune")
    assert res.returncode == 0, res.stderr
    assert res.stderr == f"portenv: removed 1 entries from {rn.cache}\n"
    assert rn.entries() == [key_of(new)]
    assert rn.run(new, "again").stdout == "tool:again\n"
    res = rn.run(new, "--all", PORTENV="prune")
    assert res.returncode == 0 and rn.entries() == []


def test_a_user_without_root(shell: Shell) -> None:
    """As uid 65534 with a loose umask: the cache and its entry are made private (0700)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is not installed")
    shared = Path(tempfile.mkdtemp(prefix="portenv-nobody-"))
    try:
        shared.chmod(0o1777)
        tool = shared / "tool.sh"
        quiet = Env(python=b"#!/bin/sh\n:\n", commands=(("tool", TOOL),))  # no host python
        tool.write_bytes(build_sh(build_tar(quiet), "tool"))
        tool.chmod(0o755)
        argv = [
            setpriv,
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            *shell.argv,
            "-c",
            'umask 002; exec "$@"',
            "sh",
            *shell.argv,
            str(tool),
            "x",
        ]
        environ = {"PATH": shell.path, "TMPDIR": str(shared)}
        for _ in range(2):
            done = subprocess.run(argv, capture_output=True, text=True, env=environ, check=False)
            assert (done.returncode, done.stdout, done.stderr) == (7, "tool:x\n", "")
        root = shared / "portenv-cache-65534"
        entry = root / key_of(tool)
        for folder in (root, entry):
            assert (folder.stat().st_uid, folder.stat().st_mode & 0o777) == (65534, 0o700)
    finally:
        shutil.rmtree(shared)

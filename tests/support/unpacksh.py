"""Archives and shells for the tests of the sh unpacker (src/portenv/target/portenv-unpack.sh).

Archives are built here following docs/format.md byte for byte, with a fake environment whose
interpreter is a sh wrapper around the host python and whose relocate.py records the --to value
it was given. The fixtures that pick the shells live in tests/unit/conftest.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from portenv.write.container import render_unpacker

SCRIPT = Path(__file__).resolve().parents[2] / "src" / "portenv" / "target" / "portenv-unpack.sh"
OFFSET_RE = re.compile(rb"^PORTENV_EMBEDDED_OFFSET=(\d{10})$", re.MULTILINE)
MACHINE = platform.machine()
OTHER_ARCH = "aarch64" if MACHINE != "aarch64" else "x86_64"

RELOCATE_OK = """\
import sys
from pathlib import Path

assert sys.argv[1] == "--to", sys.argv
here = Path(__file__).resolve().parent
(here / "relocated-to").write_text(sys.argv[2])
(here / "relocated-in").write_text(str(here.parent))
"""
RELOCATE_SLOW = """\
import os
import time

mark = os.environ["PORTENV_TEST_MARK"]
with open(mark + ".new", "w") as out:
    out.write("relocating")
os.replace(mark + ".new", mark)
time.sleep(60)
"""
RELOCATE_FAIL = "import sys\nsys.stderr.write('relocate: refused\\n')\nsys.exit(1)\n"


# --------------------------------------------------------------------------- archives


@dataclass(frozen=True)
class Env:
    """A fake environment: 4 files, 4 folders and 1 symlink (9 payload members)."""

    relocate: str = RELOCATE_OK
    data: bytes = b"hello\n"
    python: bytes | None = None  # bin/python; default: a sh wrapper of the host python
    commands: tuple[tuple[str, bytes], ...] = ()  # more executables of bin/: (name, content)


def _payload_tar(env: Env) -> tuple[bytes, int]:
    wrapper = env.python or f"#!/bin/sh\nexec '{sys.executable}' \"$@\"\n".encode()
    files: dict[str, tuple[bytes, int]] = {
        ".portenv/manifest.json": (b'{"format": 1, "files": []}\n', 0o644),
        ".portenv/relocate.py": (env.relocate.encode(), 0o644),
        "bin/python": (wrapper, 0o755),
        "share/data.txt": (env.data, 0o644),
        **{f"bin/{name}": (content, 0o755) for name, content in env.commands},
    }
    dirs = {str(Path(p).parent) for p in files} | {"share/empty"}
    links = {"bin/python3": "python"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(dirs | set(files) | set(links)):
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if name in dirs:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif name in links:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, links[name], 0o777
                tar.addfile(info)
            else:
                content, info.mode = files[name]
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        count = len(dirs) + len(files) + len(links)
    return buf.getvalue(), count


def build_tar(
    env: Env | None = None,
    meta: Mapping[str, str | None] | None = None,
    payload: bytes | None = None,
) -> bytes:
    """An env.tar as docs/format.md lays it out; `meta` overrides (None drops a key)."""
    raw, count = _payload_tar(env or Env())
    payload = gzip.compress(raw, mtime=0) if payload is None else payload
    keys: dict[str, str | None] = {
        "format": "1",
        "portenv_version": "0.1.0",
        "platform": "linux-64",
        "arch": MACHINE,
        "libc": "glibc",
        "glibc_floor": "2.17",
        "unpacked_kib": "64",
        "files": str(count),
        "compression": "gzip",
        "payload_size": str(len(payload)),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "prefix_max": "255",
        "python": "bin/python",
        "env_name": "env",
    }
    keys.update(meta or {})
    block = "".join(f"{k}={v}\n" for k, v in keys.items() if v is not None).encode()
    block = block.ljust(4096, b"\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content in (("portenv/meta", block), ("portenv/payload.tar.gz", payload)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            tar.addfile(info, io.BytesIO(content))
    data = buf.getvalue()
    assert data[512:4608] == block and data[5120 : 5120 + len(payload)] == payload
    return data


def cut_payload(env: Env, pieces: int) -> tuple[bytes, str]:
    """The payload of `env` as `cut_gzip` makes it."""
    return cut_gzip(_payload_tar(env)[0], pieces)


def cut_gzip(raw: bytes, pieces: int) -> tuple[bytes, str]:
    """A gzip payload of `pieces` members cut at even places of the tar stream `raw` (through
    the files' data, not at member boundaries of the tar), and its `payload_cuts` value."""
    starts = [len(raw) * k // pieces for k in range(pieces)] + [len(raw)]
    payload, cuts = b"", []
    for begin, end in itertools.pairwise(starts):
        if payload:
            cuts.append(f"{len(payload)}:{begin}")
        payload += gzip.compress(raw[begin:end], mtime=0)
    cuts.append(f"{len(payload)}:{len(raw)}")
    return payload, " ".join(cuts)


def build_cut_tar(env: Env, pieces: int, meta: Mapping[str, str | None] | None = None) -> bytes:
    """An env.tar whose payload offers `pieces` pieces for parallel decompression."""
    payload, cuts = cut_payload(env, pieces)
    return build_tar(env, {"payload_cuts": cuts, **(meta or {})}, payload)


def build_sh(archive: bytes, entry: str = "") -> bytes:
    """A self-extracting env.sh: portenv's own header (the unpacker padded to 512 bytes, its
    offset, the whole file's size, the payload's sha256 from the meta and `entry` written in),
    then the archive."""
    measured = render_unpacker(embedded=True)
    found = re.search(rb"^payload_sha256=([0-9a-f]{64})$", archive[512:4608], re.MULTILINE)
    sha256 = found.group(1).decode() if found else ""
    header = render_unpacker(
        embedded=True, total_size=len(measured) + len(archive), payload_sha256=sha256, entry=entry
    )
    assert len(header) % 512 == 0 and len(header) == len(measured)
    return header + archive


def standalone_unpacker() -> Path:
    """The standalone unpacker as `portenv unpacker` writes it (its own size on line 2), in the
    system's temporary folder, outside every folder a test watches."""
    data = render_unpacker(embedded=False)
    path = Path(tempfile.gettempdir()) / f"portenv-unpack-{hashlib.sha256(data).hexdigest()[:16]}"
    if not path.is_file():
        scratch = path.with_name(f"{path.name}.{os.getpid()}")
        scratch.write_bytes(data)
        os.replace(scratch, path)
    return path


# --------------------------------------------------------------------------- shells


@dataclass(frozen=True)
class Shell:
    name: str
    argv: tuple[str, ...]
    path: str


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def first(self) -> str:
        lines = self.stderr.splitlines()
        return lines[0] if lines else ""

    @property
    def last(self) -> str:
        lines = self.stderr.splitlines()
        return lines[-1] if lines else ""


@dataclass
class Unpacker:
    shell: Shell
    shape: str
    tmp: Path

    def write(self, archive: bytes, name: str = "env") -> Path:
        """Write the archive in this shape (env.tar or env.sh); return its path."""
        if self.shape == "sh":
            path = self.tmp / f"{name}.sh"
            path.write_bytes(build_sh(archive))
        else:
            path = self.tmp / f"{name}.tar"
            path.write_bytes(archive)
        return path

    def argv(self, file: Path) -> list[str]:
        """The command that unpacks `file`: `sh env.sh` or `sh portenv-unpack env.tar`."""
        if self.shape == "sh":
            return [*self.shell.argv, str(file)]
        return [*self.shell.argv, str(standalone_unpacker()), str(file)]

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PATH": self.shell.path, **extra}

    def run(
        self, file: Path, *args: str, cwd: Path | None = None, path_first: Path | None = None
    ) -> Result:
        """Run the unpacker on `file`; `path_first` is a folder of commands put before PATH."""
        env = self.env()
        if path_first is not None:
            env["PATH"] = f"{path_first}{os.pathsep}{env['PATH']}"
        proc = subprocess.run(
            [*self.argv(file), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd or self.tmp,
            timeout=120,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def unpack(self, archive: bytes, *args: str, cwd: Path | None = None) -> Result:
        return self.run(self.write(archive), *args, cwd=cwd)


def tree(root: Path) -> dict[str, str]:
    """Everything under root: relative path -> content, link target or 'dir'."""
    found: dict[str, str] = {}
    if not root.exists():
        return found
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = path.read_bytes().decode("latin-1")
    return found


def wait_for_mark(proc: subprocess.Popen[bytes], mark: Path) -> None:
    """Wait until a slow fake relocation wrote `mark` (it then sleeps), or the process ended."""
    for _ in range(600):
        if mark.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert mark.read_text() == "relocating"


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def assert_relocated(dest: Path, data: bytes = b"hello\n") -> None:
    assert (dest / ".portenv" / "relocated-to").read_text() == str(dest)
    assert f".portenv-tmp.{dest.name}." in (dest / ".portenv" / "relocated-in").read_text()
    assert (dest / "share" / "data.txt").read_bytes() == data
    assert os.readlink(dest / "bin" / "python3") == "python"
    assert (dest / "share" / "empty").is_dir()
    assert os.access(dest / "bin" / "python", os.X_OK)

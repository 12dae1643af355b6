"""Packing through a misbehaving server: retries with backoff, one clear error, nothing half-kept.

A pixi lock whose conda and PyPI URLs point at a local flaky server (tests/support/flaky_server)
is packed through the CLI. Failures are driven in-process through `main(argv)` (the CLI's
error boundary) with a short timeout and backoff; the retry that succeeds runs as a child
process with the default backoff, to measure the real pauses.
"""

from __future__ import annotations

import hashlib
import itertools
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from portenv import fetch
from portenv._rattler import PypiEntry
from portenv.cli import main
from tests.conftest import portenv
from tests.support.channel import solve
from tests.support.flaky_server import (
    TRICKLE_BYTES,
    TRICKLE_PAUSE_S,
    FlakyServer,
    flaky_server,
    refused_url,
)
from tests.support.hardening import record
from tests.support.pypilock import make_wheel, write_lock

pytestmark = pytest.mark.hardening

SPECS = ["python 3.12.*", "greet"]
PYTHON = "linux-64/python-3.12.1"
WHEEL = "tinywheel-1.0-py3-none-any.whl"
TIMEOUT = "0.4"


@dataclass(frozen=True)
class Served:
    """A project whose lock downloads everything from the flaky server."""

    server: FlakyServer
    project: Path
    cache: Path
    out: Path

    def file(self, prefix: str) -> str:
        """The served path (relative) of the one package file starting with `prefix`."""
        subdir, _, start = prefix.partition("/")
        found = sorted(
            f"{subdir}/{p.name}"
            for p in (self.server.root / subdir).iterdir()
            if p.name.startswith(start)
        )
        assert len(found) == 1, found
        return found[0]


def _served_root(local_channel: Path, root: Path) -> None:
    """The channel's package folders plus one wheel (the channel itself stays read-only)."""
    root.mkdir()
    for subdir in ("linux-64", "noarch"):
        (root / subdir).symlink_to(local_channel / subdir)
    make_wheel(root, "tinywheel", "1.0", files={"tinywheel/__init__.py": "X = 1\n"})


def _write_project(
    project: Path, local_channel: Path, server: FlakyServer, *, wheel_hash: bool
) -> None:
    """pixi.toml + pixi.lock (conda packages and one wheel), every URL on the server."""
    project.mkdir()
    records = solve(local_channel, SPECS, "linux-64")
    wheel = server.root / WHEEL
    entry = PypiEntry(
        "tinywheel", "1.0", server.url(WHEEL), hashlib.sha256(wheel.read_bytes()).hexdigest()
    )
    write_lock(
        project / "pixi.lock",
        local_channel,
        "linux-64",
        records,
        [entry],
        with_hashes=wheel_hash,
        index_url=None,
    )
    manifest = "\n".join(
        [
            "[workspace]",
            'name = "served"',
            f'channels = ["{local_channel.as_uri()}"]',
            'platforms = ["linux-64"]',
            "",
            "[dependencies]",
            'python = "3.12.*"',
            'greet = "*"',
            "",
            "[pypi-dependencies]",
            f'tinywheel = {{ url = "{server.url(WHEEL)}" }}',
            "",
        ]
    )
    (project / "pixi.toml").write_text(manifest)
    for name in ("pixi.lock", "pixi.toml"):
        path = project / name
        text = path.read_text().replace(local_channel.as_uri(), server.base)
        path.write_text(text.replace(str(local_channel), server.base))
    assert str(local_channel) not in (project / "pixi.lock").read_text()


@pytest.fixture
def served(local_channel: Path, tmp_path: Path) -> Iterator[Served]:
    _served_root(local_channel, tmp_path / "served")
    with flaky_server(tmp_path / "served") as server:
        _write_project(tmp_path / "project", local_channel, server, wheel_hash=True)
        (tmp_path / "dist").mkdir()
        yield Served(server, tmp_path / "project", tmp_path / "cache", tmp_path / "dist")


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A short read timeout and backoff, so failing cases take well under a second each.

    Returns the pauses portenv scheduled between attempts, in order: the schedule is asserted,
    never the wall clock, which load on the machine stretches unevenly.
    """
    monkeypatch.setenv(fetch.TIMEOUT_VARIABLE, TIMEOUT)
    monkeypatch.setattr(fetch, "BACKOFF_S", 0.05)
    pauses: list[float] = []

    def recorded(seconds: float) -> None:
        pauses.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(fetch, "pause", recorded)
    return pauses


def _pack(
    served: Served, capsys: pytest.CaptureFixture[str], output: str = "env.sh"
) -> tuple[int, list[str]]:
    code = main(
        [
            "pack",
            str(served.project),
            "-o",
            str(served.out / output),
            "--use-cache",
            str(served.cache),
        ]
    )
    return code, capsys.readouterr().err.splitlines()


def _one_error(lines: list[str], *needles: str) -> str:
    """stderr holds one `error:` line (naming every needle) and one hint, no traceback."""
    errors = [line for line in lines if line.startswith("error: ")]
    hints = [line for line in lines if line.strip().startswith("hint: ")]
    assert len(errors) == 1 and len(hints) == 1, lines
    assert not any("Traceback" in line for line in lines), lines
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def _left_behind(served: Served) -> None:
    """No output, no temporary output, and only verified, complete files in the cache."""
    assert list(served.out.iterdir()) == [], list(served.out.iterdir())
    cached = [p for p in served.cache.rglob("*") if p.is_file()] if served.cache.exists() else []
    for path in cached:
        assert not path.name.startswith(".part-"), path
        key = path.parent.name
        if len(key) == 64:  # keyed by its sha256: the content must match
            assert hashlib.sha256(path.read_bytes()).hexdigest() == key, path


def _gaps(served: Served, relative: str) -> list[float]:
    times = [hit.at for hit in served.server.attempts(relative)]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def _assert_backoff(gaps: list[float], base: float) -> None:
    """Each retry came no sooner than its pause, base*2, base*4 ... (a lower bound only: a
    loaded machine may stretch any gap, so their order proves nothing)."""
    assert gaps, "no retry happened"
    for n, gap in enumerate(gaps, start=1):
        assert gap >= base * 2**n * 0.9, gaps


def _backoff_schedule(base: float, retries: int) -> list[float]:
    """The pauses portenv must schedule before each retry: base*2, base*4 ..."""
    return [base * 2**n for n in range(1, retries + 1)]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("truncate", "connection closed after"),
        ("stall", f"no data for {TIMEOUT} s (timed out)"),
        (500, "HTTP 500 Internal Server Error"),
        (503, "HTTP 503 Service Unavailable"),
    ],
)
def test_transient_faults_are_retried_then_fail_clearly(
    served: Served,
    capsys: pytest.CaptureFixture[str],
    quick: list[float],
    fault: str | int,
    reason: str,
) -> None:
    python = served.file(PYTHON)
    served.server.script(python, fault, fault, fault)
    code, lines = _pack(served, capsys)
    assert code == 1
    _one_error(lines, served.server.url(python), reason, "(after 3 attempts)")
    attempts = served.server.attempts(python)
    assert [hit.answer for hit in attempts] == [str(fault)] * fetch.ATTEMPTS
    assert quick == _backoff_schedule(0.05, fetch.ATTEMPTS - 1)
    _assert_backoff(_gaps(served, python), 0.05)
    _left_behind(served)
    record("network", f"{fault} on every attempt", f"refused, exit {code}", attempts=len(attempts))


@pytest.mark.usefixtures("quick")
def test_wrong_hash_body_is_refused_without_retry(
    served: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a timeout is retried: under load the quick read timeout could trip while the body
    # streams, so this test waits as long as a user would, and every attempt is wrong
    monkeypatch.setenv(fetch.TIMEOUT_VARIABLE, "60")
    python = served.file(PYTHON)
    served.server.script(python, "wrong", "wrong", "wrong")
    code, lines = _pack(served, capsys)
    assert code == 1
    _one_error(lines, "hash mismatch for python", served.server.url(python))
    assert len(served.server.attempts(python)) == 1
    _left_behind(served)
    record("network", "wrong-hash body", f"refused, exit {code}", attempts=1)


@pytest.mark.usefixtures("quick")
def test_404_is_not_retried(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    served.server.script(WHEEL, 404, 404, 404)
    code, lines = _pack(served, capsys)
    assert code == 1
    _one_error(lines, served.server.url(WHEEL), "HTTP 404 Not Found")
    assert len(served.server.attempts(WHEEL)) == 1
    _left_behind(served)
    record("network", "404 Not Found", f"refused, exit {code}", attempts=1)


@pytest.mark.usefixtures("quick")
def test_truncated_wheel_without_a_hash_is_not_cached_half(
    local_channel: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lock without a wheel hash cannot catch a short body by hash: the length check does."""
    _served_root(local_channel, tmp_path / "served")
    with flaky_server(tmp_path / "served") as server:
        _write_project(tmp_path / "project", local_channel, server, wheel_hash=False)
        (tmp_path / "dist").mkdir()
        served = Served(server, tmp_path / "project", tmp_path / "cache", tmp_path / "dist")
        server.script(WHEEL, "truncate", "truncate", "truncate")
        code, lines = _pack(served, capsys)
    assert code == 1
    _one_error(lines, server.url(WHEEL), "connection closed after")
    assert not [p for p in served.cache.rglob(WHEEL)], "a short wheel was cached"
    _left_behind(served)
    record("network", "truncated wheel, no hash in the lock", f"refused, exit {code}", attempts=3)


@pytest.mark.usefixtures("quick")
def test_connection_refused_is_retried_then_fails_clearly(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = served.project / "pixi.lock"
    dead = refused_url("").rstrip("/")
    lock.write_text(lock.read_text().replace(served.server.base, dead))
    code, lines = _pack(served, capsys)
    assert code == 1
    _one_error(lines, dead, "Connection refused", "(after 3 attempts)")
    assert served.server.hits == []
    _left_behind(served)
    record("network", "connection refused", f"refused, exit {code}", attempts=3)


def test_server_errors_then_success_pack_with_backoff(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """503, 500, then the file: the pack succeeds after pauses of about 1 s and 2 s."""
    python, wheel = served.file(PYTHON), WHEEL
    served.server.script(python, 503, 500)
    served.server.script(wheel, "truncate")
    output = served.out / "environment.tar"
    monkeypatch.setenv(fetch.TIMEOUT_VARIABLE, "10")
    done = portenv(
        "pack", served.project, "-o", output, "--format", "pixi-pack", "--use-cache", served.cache
    )
    assert done.returncode == 0, done.stderr
    assert [hit.answer for hit in served.server.attempts(python)] == ["503", "500", "ok"]
    assert [hit.answer for hit in served.server.attempts(wheel)] == ["truncate", "ok"]
    gaps = _gaps(served, python)
    _assert_backoff(gaps, fetch.BACKOFF_S)
    with tarfile.open(output) as archive:
        names = archive.getnames()
    assert f"channel/{python}" in names and f"pypi/{WHEEL}" in names
    packed = served.cache / "pypi"
    assert [p.read_bytes() for p in packed.rglob(WHEEL)] == [
        (served.server.root / WHEEL).read_bytes()
    ]
    _left_behind_ok(served, output)
    record(
        "network",
        "503, 500, then success",
        "packed, exit 0",
        attempts=3,
        pauses_ms=" / ".join(f"{gap * 1000:.0f}" for gap in gaps),
    )


def _left_behind_ok(served: Served, output: Path) -> None:
    """A success leaves the archive and its .sha256, nothing temporary."""
    names = sorted(p.name for p in served.out.iterdir())
    assert names == [output.name, output.name + ".sha256"], names
    assert not [p for p in served.cache.rglob(".part-*")]


@pytest.mark.usefixtures("quick")
def test_the_first_failure_stops_the_other_downloads(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    """greet is gone while python trickles in: the error comes at once, python is not kept."""
    python, greet = served.file(PYTHON), served.file("linux-64/greet-")
    served.server.script(python, "trickle")
    served.server.script(greet, 404)
    size = (served.server.root / python).stat().st_size
    whole = size / TRICKLE_BYTES * TRICKLE_PAUSE_S
    started = time.monotonic()
    code, lines = _pack(served, capsys)
    sent = served.server.sent_of(python)
    elapsed = time.monotonic() - started
    assert code == 1
    _one_error(lines, served.server.url(greet), "HTTP 404 Not Found")
    assert sent < size, f"pack waited for the whole download ({sent} of {size} bytes)"
    assert not list(served.cache.rglob(Path(python).name)), "the stopped download was kept"
    _left_behind(served)
    record(
        "network",
        "404 on one file while another downloads",
        f"refused, exit {code}, the other download stopped",
        seconds=f"{elapsed:.1f} of {whole:.1f}",
    )

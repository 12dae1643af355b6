"""The verified cache: downloads over HTTP and file://, hash checks on every hit and miss."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from portenv.errors import FetchError, HashMismatchError, InputError
from portenv.fetch import (
    TIMEOUT_VARIABLE,
    cache_path,
    fetch_conda,
    fetch_file,
    pypi_download,
    resolve_location,
    timeout_s,
)
from portenv.model import CondaPackage, PypiPackage


class RecordingReporter:
    """Keeps every hook call, to check progress is reported."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def on_task_start(self, label: str, total: int | None) -> int:
        self.calls.append(("start", label))
        return 7

    def on_task_advance(self, token: int, amount: int) -> None:
        self.calls.append(("advance", amount))

    def on_task_complete(self, token: int) -> None:
        self.calls.append(("complete", token))

    def on_warning(self, message: str) -> None:
        self.calls.append(("warning", message))

    def on_info(self, message: str) -> None:
        self.calls.append(("info", message))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on loopback, with the base URL."""
    root = tmp_path / "served"
    root.mkdir()
    handler = partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def package(
    name: str, url: str, content: bytes, *, sha256: str | None = "", md5: str | None = None
) -> CondaPackage:
    digest = hashlib.sha256(content).hexdigest() if sha256 == "" else sha256
    return CondaPackage(
        name=name,
        version="1.0",
        build="0",
        subdir="linux-64",
        url=url,
        file_name=f"{name}-1.0-0.conda",
        sha256=digest,
        md5=md5,
        size=len(content),
    )


def test_http_download_is_verified_and_cached(served: tuple[Path, str], tmp_path: Path) -> None:
    root, base = served
    blobs = {f"p{i}": bytes([i]) * (100_000 + i) for i in range(5)}
    for name, blob in blobs.items():
        (root / f"{name}.conda").write_bytes(blob)
    packages = [package(n, f"{base}/{n}.conda", b) for n, b in blobs.items()]
    reporter = RecordingReporter()
    fetched = fetch_conda(packages, tmp_path / "cache", base=tmp_path, reporter=reporter)
    assert [f.path.read_bytes() for f in fetched] == list(blobs.values())
    assert all(f.path == cache_path(tmp_path / "cache", f.package) for f in fetched)
    advanced = sum(int(a) for kind, a in reporter.calls if kind == "advance")  # type: ignore[call-overload]
    assert advanced == sum(len(b) for b in blobs.values())
    assert reporter.calls[0][0] == "start" and reporter.calls[-1][0] == "complete"
    for name in blobs:  # a second fetch is served from the cache: the server may be gone
        (root / f"{name}.conda").unlink()
    again = fetch_conda(packages, tmp_path / "cache", base=tmp_path)
    assert [f.path for f in again] == [f.path for f in fetched]


def test_wrong_hash_aborts_naming_package_and_both_hashes(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    root, base = served
    (root / "evil.conda").write_bytes(b"not what the lock says")
    wanted = "0" * 64
    with pytest.raises(HashMismatchError) as caught:
        fetch_conda(
            [package("evil", f"{base}/evil.conda", b"", sha256=wanted)],
            tmp_path / "cache",
            base=tmp_path,
        )
    actual = hashlib.sha256(b"not what the lock says").hexdigest()
    assert "evil" in str(caught.value)
    assert wanted in str(caught.value) and actual in str(caught.value)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()], "nothing is cached"


def test_corrupted_cache_entry_is_downloaded_again(tmp_path: Path) -> None:
    source = tmp_path / "pkg.conda"
    source.write_bytes(b"good bytes")
    pkg = package("pkg", source.as_uri(), b"good bytes")
    cached = fetch_conda([pkg], tmp_path / "cache", base=tmp_path)[0].path
    cached.write_bytes(b"bit rot")
    assert (
        fetch_conda([pkg], tmp_path / "cache", base=tmp_path)[0].path.read_bytes() == b"good bytes"
    )


def test_md5_is_used_when_the_lock_has_no_sha256(tmp_path: Path) -> None:
    source = tmp_path / "old.tar.bz2"
    source.write_bytes(b"old package")
    md5 = hashlib.md5(b"old package").hexdigest()
    pkg = package("old", source.as_uri(), b"", sha256=None, md5=md5)
    fetched = fetch_conda([pkg], tmp_path / "cache", base=tmp_path)[0]
    assert fetched.path.parent.name == f"md5-{md5}"
    bad = package("old", source.as_uri(), b"", sha256=None, md5="f" * 32)
    with pytest.raises(HashMismatchError, match="md5:"):
        fetch_conda([bad], tmp_path / "cache2", base=tmp_path)


def test_relative_lock_paths_resolve_against_the_project(tmp_path: Path) -> None:
    (tmp_path / "pkgs").mkdir()
    (tmp_path / "pkgs" / "local.conda").write_bytes(b"local")
    assert (
        resolve_location("pkgs/local.conda", tmp_path) == (tmp_path / "pkgs/local.conda").as_uri()
    )
    assert resolve_location("https://example.invalid/x.conda", tmp_path).startswith("https://")
    pkg = package("local", "pkgs/local.conda", b"local")
    assert fetch_conda([pkg], tmp_path / "cache", base=tmp_path)[0].path.read_bytes() == b"local"


def test_missing_file_and_http_404_are_clear(served: tuple[Path, str], tmp_path: Path) -> None:
    _root, base = served
    with pytest.raises(FetchError, match="package file not found"):
        fetch_conda(
            [package("gone", (tmp_path / "gone.conda").as_uri(), b"")],
            tmp_path / "c",
            base=tmp_path,
        )
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_conda([package("gone", f"{base}/gone.conda", b"")], tmp_path / "c", base=tmp_path)


def test_no_hash_at_all_is_refused(tmp_path: Path) -> None:
    pkg = package("bare", (tmp_path / "x").as_uri(), b"", sha256=None, md5=None)
    with pytest.raises(FetchError, match="no sha256 or md5"):
        fetch_conda([pkg], tmp_path / "cache", base=tmp_path)


@pytest.mark.parametrize("value", ["soon", "0", "-3", "nan"])
def test_a_bad_timeout_setting_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(TIMEOUT_VARIABLE, value)
    with pytest.raises(InputError, match=TIMEOUT_VARIABLE):
        timeout_s()


def test_the_timeout_setting_is_read_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIMEOUT_VARIABLE, "2.5")
    assert timeout_s() == 2.5
    monkeypatch.delenv(TIMEOUT_VARIABLE)
    assert timeout_s() == 60


def test_an_unwritable_cache_is_one_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "pkg.conda"
    source.write_bytes(b"bytes")
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache should be")
    with pytest.raises(FetchError, match="cannot write to the package cache"):
        fetch_conda([package("pkg", source.as_uri(), b"bytes")], blocked, base=tmp_path)


def test_a_local_file_without_a_hash_is_copied_afresh_each_time(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    """A wheel the user rebuilds keeps its name; a URL without a hash is taken as fixed."""
    wheel = tmp_path / "tool-1.0-py3-none-any.whl"
    wheel.write_bytes(b"first build")
    local = pypi_download(PypiPackage("tool", "1.0", str(wheel), "wheel", None), tmp_path)
    assert local.expected is None and local.url == wheel.as_uri()
    cache = tmp_path / "cache"
    assert fetch_file(local, cache, lambda _n: None)[0].read_bytes() == b"first build"
    wheel.write_bytes(b"second build")
    path, sha256 = fetch_file(local, cache, lambda _n: None)
    assert (path.read_bytes(), sha256) == (
        b"second build",
        hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    root, base = served
    (root / "remote-1.0-py3-none-any.whl").write_bytes(b"remote")
    url = f"direct+{base}/remote-1.0-py3-none-any.whl"
    remote = pypi_download(PypiPackage("remote", "1.0", url, "wheel", None), tmp_path)
    assert fetch_file(remote, cache, lambda _n: None)[0].read_bytes() == b"remote"
    (root / "remote-1.0-py3-none-any.whl").unlink()
    assert fetch_file(remote, cache, lambda _n: None)[0].read_bytes() == b"remote"

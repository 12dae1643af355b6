"""Download locked packages into a cache keyed by hash, verifying every file, hit or miss."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from portenv.errors import FetchError, HashMismatchError, InputError
from portenv.model import CondaPackage, FetchedPackage, PypiPackage, PypiSource
from portenv.reporting import NullReporter, Reporter

__all__ = [
    "Download",
    "cache_path",
    "conda_download",
    "fetch_conda",
    "fetch_file",
    "fetch_files",
    "fetch_git",
    "fetch_pypi",
    "file_digest",
    "pypi_download",
    "resolve_location",
    "timeout_s",
]

CHUNK = 1 << 20
ATTEMPTS = 3
#: The pause before retry n is BACKOFF_S * 2**n seconds (1 s, then 2 s).
BACKOFF_S = 0.5
TIMEOUT_S = 60.0
TIMEOUT_VARIABLE = "PORTENV_HTTP_TIMEOUT"


def pause(seconds: float) -> None:
    """The wait before a retry (one place, so that tests can record the schedule)."""
    time.sleep(seconds)


def resolve_location(location: str, base: Path) -> str:
    """An absolute URL for a lock location (URLs stay, paths are taken relative to `base`)."""
    if "://" in location:
        return location
    return (base / location).resolve().as_uri()


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Download:
    """One file to bring into the cache, with the hash that must match (if the lock has one)."""

    name: str
    url: str
    file_name: str
    kind: str
    algorithm: str | None
    expected: str | None
    size: int | None = None

    @property
    def key(self) -> str:
        """The cache folder: the expected hash, or the URL's hash when the lock has none."""
        if self.algorithm == "sha256" and self.expected:
            return self.expected
        if self.algorithm and self.expected:
            return f"{self.algorithm}-{self.expected}"
        return "url-" + hashlib.sha256(self.url.encode()).hexdigest()[:40]

    def path_in(self, cache: Path) -> Path:
        """Where this file lives in the cache."""
        return cache / self.kind / self.key / self.file_name


def conda_download(package: CondaPackage, base: Path) -> Download:
    """A conda package verified by sha256, or md5 where the lock has only that."""
    if package.sha256:
        algorithm, expected = "sha256", package.sha256
    elif package.md5:
        algorithm, expected = "md5", package.md5
    else:
        msg = f"{package.name} has no sha256 or md5 in the lock, so it cannot be verified"
        raise FetchError(msg, hint="re-lock the project so the lock records hashes")
    url = resolve_location(package.url, base)
    return Download(
        package.name, url, package.file_name, "conda", algorithm, expected, package.size
    )


def pypi_download(package: PypiPackage, base: Path) -> Download:
    """A PyPI file: verified by the lock's sha256, else by a `#sha256=` in its URL, else hashed."""
    location, _, fragment = package.url.removeprefix("direct+").partition("#")
    expected = package.sha256
    if expected is None and fragment.startswith("sha256="):
        expected = fragment.removeprefix("sha256=")
    url = resolve_location(location, base)
    algorithm = "sha256" if expected else None
    return Download(package.name, url, package.file_name, "pypi", algorithm, expected)


def fetch_pypi(
    packages: Sequence[PypiPackage],
    base: Path,
    cache: Path,
    reporter: Reporter | None = None,
    jobs: int = 8,
) -> list[PypiSource]:
    """Each package's source on this machine, in order: files downloaded (or read) into the
    verified cache, local source folders used in place, git commits checked out."""
    sources: list[PypiSource | None] = [None] * len(packages)
    downloads: list[tuple[int, Download]] = []
    for at, package in enumerate(packages):
        if package.kind == "git":
            checkout, commit = fetch_git(package, cache)
            sources[at] = PypiSource(package, checkout, "git", commit)
            continue
        item = pypi_download(package, base)
        local = Path(urllib.request.url2pathname(item.url.removeprefix("file://")))
        if item.url.startswith("file://") and local.is_dir():
            url_digest = hashlib.sha256(item.url.encode()).hexdigest()
            sources[at] = PypiSource(package, local, "folder", url_digest)
        else:
            downloads.append((at, item))
    got = fetch_files([d for _, d in downloads], cache, reporter=reporter, jobs=jobs)
    for (at, _), (path, sha256) in zip(downloads, got, strict=True):
        sources[at] = PypiSource(packages[at], path, "file", sha256)
    return [s for s in sources if s is not None]


def fetch_git(package: PypiPackage, cache: Path) -> tuple[Path, str]:
    """A checkout of the locked commit of a git dependency, and that commit.

    The lock pins the commit after `#`; a location without one cannot be reproduced.
    """
    location, _, commit = package.url.removeprefix("git+").partition("#")
    url = location.split("?", 1)[0]
    if not re.fullmatch(r"[0-9a-f]{7,64}", commit):
        msg = f"git dependency {package.name} is not pinned to a commit: {package.url}"
        raise FetchError(msg, hint="re-lock so the lock records the commit")
    checkout = cache / "git" / hashlib.sha256(url.encode()).hexdigest()[:32] / commit
    if not (checkout / ".git").is_dir():
        scratch = Path(tempfile.mkdtemp(dir=_parent(checkout), prefix=".clone-"))
        try:
            _git("clone", "--quiet", "--no-checkout", url, str(scratch))
            _git("-C", str(scratch), "checkout", "--quiet", commit)
            os.replace(scratch, checkout)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return checkout, commit


def _parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent


def _git(*args: str) -> None:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["git failed"])[-1]
        msg = f"git {args[0] if args[0] != '-C' else args[2]} failed: {last}"
        raise FetchError(msg, hint="check the repository URL and your network")


def cache_path(cache: Path, package: CondaPackage) -> Path:
    """Where a conda package lives in the cache (keyed by its hash, named as upstream names it)."""
    return conda_download(package, Path("/")).path_in(cache)


def timeout_s() -> float:
    """Seconds a download may wait for data: PORTENV_HTTP_TIMEOUT, else 60."""
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 86_400:
        msg = f"{TIMEOUT_VARIABLE}={text!r} is not a number of seconds"
        raise InputError(msg, hint=f"set it to e.g. 120, or unset it for {TIMEOUT_S} s")
    return value


def _open(url: str) -> BinaryIO:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return open(urllib.request.url2pathname(parsed.path), "rb")
    request = urllib.request.Request(url, headers={"User-Agent": "portenv"})
    return urllib.request.urlopen(request, timeout=timeout_s())  # type: ignore[no-any-return]


class _Truncated(OSError):
    """The server closed the connection before sending the length it announced."""


def _announced_length(source: BinaryIO) -> int | None:
    headers = getattr(source, "headers", None)
    length = headers.get("Content-Length") if headers is not None else None
    return int(length) if length is not None and length.strip().isdigit() else None


def _download_once(url: str, dest: Path, algorithm: str, advance: Callable[[int], None]) -> str:
    digest = hashlib.new(algorithm)
    received = 0
    with _open(url) as source, dest.open("wb") as sink:
        announced = _announced_length(source)
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            sink.write(chunk)
            received += len(chunk)
            advance(len(chunk))
    if announced is not None and received < announced:
        msg = f"connection closed after {received:,} of {announced:,} bytes"
        raise _Truncated(msg)
    return digest.hexdigest()


def _retryable(exc: Exception) -> bool:
    """Server trouble, throttling and network failures pass; a missing file does not."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code in (408, 429)
    return not isinstance(exc, FileNotFoundError)


def _reason(exc: Exception) -> str:
    """What went wrong, in words, without urllib's wrapping."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}".strip()
    if isinstance(exc, TimeoutError) or (
        isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, TimeoutError)
    ):
        return f"no data for {timeout_s():g} s (timed out)"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, _Truncated):
        return exc.strerror
    return str(exc) or type(exc).__name__


def _failure(url: str, exc: Exception, attempts: int) -> FetchError:
    """The final error: one line naming the URL, the reason and the attempts, and a hint."""
    if isinstance(exc, FileNotFoundError):
        msg = f"package file not found: {url}"
        return FetchError(msg, hint="check the path in pixi.lock, or re-lock")
    tries = f" (after {attempts} attempts)" if attempts > 1 else ""
    msg = f"download failed: {url}: {_reason(exc)}{tries}"
    if isinstance(exc, urllib.error.HTTPError) and not _retryable(exc):
        return FetchError(msg, hint="the server does not have this file: check the URL, or re-lock")
    if "timed out" in msg:
        hint = f"the server is slow or unreachable: retry, or raise {TIMEOUT_VARIABLE} (seconds)"
        return FetchError(msg, hint=hint)
    return FetchError(msg, hint="the server or the network failed: retry later, or check a proxy")


def _download(url: str, dest: Path, algorithm: str, advance: Callable[[int], None]) -> str:
    """Download with retries and exponential backoff; only transient failures are retried."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _download_once(url, dest, algorithm, advance)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            if attempt == ATTEMPTS or not _retryable(exc):
                raise _failure(url, exc, attempt) from exc
        pause(BACKOFF_S * 2**attempt)
    msg = "unreachable: the last attempt raises"
    raise AssertionError(msg)


def fetch_file(item: Download, cache: Path, advance: Callable[[int], None]) -> tuple[Path, str]:
    """The cached file and its sha256, downloading it when missing or corrupt.

    A file the lock gives a hash for is checked on every use, cache hit or not; a local file
    without one is copied again each time, since it may have been rebuilt under the same name.
    """
    target = item.path_in(cache)
    algorithm = item.algorithm or "sha256"
    if target.is_file():
        if item.expected is None:
            still_good = not item.url.startswith("file:")
        else:
            still_good = file_digest(target, algorithm) == item.expected
        if still_good:
            advance(target.stat().st_size)
            return target, _sha256(target, item)
        target.unlink()
    tmp = _scratch_beside(target)
    try:
        actual = _download(item.url, tmp, algorithm, advance)
        if item.expected is not None and actual != item.expected:
            expected = f"{algorithm}:{item.expected}"
            raise HashMismatchError(item.name, item.url, expected, f"{algorithm}:{actual}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target, _sha256(target, item)


def _scratch_beside(target: Path) -> Path:
    """An empty `.part-` file in the cache folder of `target`, renamed over it when verified."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    except OSError as exc:
        msg = f"cannot write to the package cache {target.parent}: {exc.strerror or exc}"
        raise FetchError(msg, hint="choose a writable folder with --use-cache") from exc
    os.close(fd)
    return Path(name)


def _sha256(path: Path, item: Download) -> str:
    if item.algorithm == "sha256" and item.expected:
        return item.expected
    return file_digest(path)


class _Stopped(Exception):
    """Another download failed (or the user interrupted): this one stops at its next chunk."""


def fetch_files(
    items: Sequence[Download], cache: Path, *, reporter: Reporter | None = None, jobs: int = 8
) -> list[tuple[Path, str]]:
    """Fetch every file concurrently into `cache`; the first failure stops the rest.

    The error raised is the first to happen, not the first in list order, and downloads
    still running stop at their next chunk (each removes its `.part-` file).
    """
    if not items:
        return []  # no step to show
    reporter = reporter or NullReporter()
    total = sum(i.size or 0 for i in items) or None
    token = reporter.on_task_start(f"fetching {len(items)} files", total)
    stop = threading.Event()

    def advance(amount: int) -> None:
        if stop.is_set():
            raise _Stopped
        reporter.on_task_advance(token, amount)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(fetch_file, item, cache, advance) for item in items]
        try:
            done, _running = wait(futures, return_when=FIRST_EXCEPTION)
            for future in done:
                error = future.exception()
                if error is not None:
                    raise error
            results = [f.result() for f in futures]
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
    reporter.on_task_complete(token)
    return results


def fetch_conda(
    packages: Sequence[CondaPackage],
    cache: Path,
    *,
    base: Path,
    reporter: Reporter | None = None,
    jobs: int = 8,
) -> list[FetchedPackage]:
    """Fetch the conda packages of a plan."""
    items = [conda_download(p, base) for p in packages]
    results = fetch_files(items, cache, reporter=reporter, jobs=jobs)
    return [FetchedPackage(p, path) for p, (path, _sha) in zip(packages, results, strict=True)]

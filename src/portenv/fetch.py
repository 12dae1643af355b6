"""Download locked packages into a cache keyed by hash, verifying every file, hit or miss."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from portenv.errors import FetchError, HashMismatchError
from portenv.model import CondaPackage, FetchedPackage
from portenv.reporting import NullReporter, Reporter

__all__ = ["fetch_conda", "file_digest", "resolve_location"]

CHUNK = 1 << 20
ATTEMPTS = 3
TIMEOUT_S = 60


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


def _expected(package: CondaPackage) -> tuple[str, str]:
    if package.sha256:
        return "sha256", package.sha256
    if package.md5:
        return "md5", package.md5
    msg = f"{package.name} has no sha256 or md5 in the lock, so it cannot be verified"
    raise FetchError(msg, hint="re-lock the project so the lock records hashes")


def cache_path(cache: Path, package: CondaPackage) -> Path:
    """Where a package lives in the cache: keyed by its hash, named as upstream names it."""
    algorithm, value = _expected(package)
    key = value if algorithm == "sha256" else f"md5-{value}"
    return cache / "conda" / key / package.file_name


def _open(url: str) -> BinaryIO:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return open(urllib.request.url2pathname(parsed.path), "rb")
    request = urllib.request.Request(url, headers={"User-Agent": "portenv"})
    return urllib.request.urlopen(request, timeout=TIMEOUT_S)  # type: ignore[no-any-return]


def _download_once(url: str, dest: Path, algorithm: str, advance: Callable[[int], None]) -> str:
    digest = hashlib.new(algorithm)
    with _open(url) as source, dest.open("wb") as sink:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            sink.write(chunk)
            advance(len(chunk))
    return digest.hexdigest()


def _download(url: str, dest: Path, algorithm: str, advance: Callable[[int], None]) -> str:
    """Download with retries and backoff; only network-level failures are retried."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _download_once(url, dest, algorithm, advance)
        except FileNotFoundError as exc:
            msg = f"package file not found: {url}"
            raise FetchError(msg, hint="check the path in pixi.lock, or re-lock") from exc
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == ATTEMPTS:
                msg = f"download failed: HTTP {exc.code} for {url}"
                raise FetchError(msg, hint="check the channel URL and your network") from exc
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            if attempt == ATTEMPTS:
                msg = f"download failed after {ATTEMPTS} attempts: {url}: {exc}"
                raise FetchError(msg, hint="check your network or proxy, then retry") from exc
        time.sleep(0.5 * 2**attempt)
    msg = "unreachable: the last attempt raises"
    raise AssertionError(msg)


def fetch_one(
    package: CondaPackage, cache: Path, base: Path, advance: Callable[[int], None]
) -> FetchedPackage:
    """Return the package's cached file, downloading it when missing or corrupt."""
    algorithm, expected = _expected(package)
    target = cache_path(cache, package)
    if target.is_file():
        if file_digest(target, algorithm) == expected:
            advance(target.stat().st_size)
            return FetchedPackage(package, target)
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    url = resolve_location(package.url, base)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        actual = _download(url, tmp, algorithm, advance)
        if actual != expected:
            raise HashMismatchError(
                package.name, url, f"{algorithm}:{expected}", f"{algorithm}:{actual}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return FetchedPackage(package, target)


def fetch_conda(
    packages: Sequence[CondaPackage],
    cache: Path,
    *,
    base: Path,
    reporter: Reporter | None = None,
    jobs: int = 8,
) -> list[FetchedPackage]:
    """Fetch every package concurrently into `cache`; the first failure aborts the rest."""
    reporter = reporter or NullReporter()
    total = sum(p.size or 0 for p in packages) or None
    token = reporter.on_task_start(f"fetching {len(packages)} packages", total)

    def advance(amount: int) -> None:
        reporter.on_task_advance(token, amount)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(fetch_one, p, cache, base, advance) for p in packages]
        try:
            fetched = [f.result() for f in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    reporter.on_task_complete(token)
    return fetched

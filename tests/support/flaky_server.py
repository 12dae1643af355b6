"""A local HTTP server that misbehaves on purpose, to prove portenv's downloads survive it.

It serves a folder on 127.0.0.1 (a free port). For a path, a test scripts the faults the
next requests get, one per request, before the file is served as it is: `truncate` (a
Content-Length larger than the body, then the connection is closed), `stall` (headers,
then nothing until the server stops), `trickle` (the whole file, slowly), `wrong` (other
bytes than the file's), or an HTTP status such as 500, 503 or 404. Every request is logged
with its time, so a test can count attempts and measure the pauses between them.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FlakyServer", "Hit", "flaky_server", "refused_url"]

Fault = str | int
#: `trickle` sends the file in pieces of this size, one per pause.
TRICKLE_BYTES = 128 * 1024
TRICKLE_PAUSE_S = 0.05


@dataclass(frozen=True)
class Hit:
    """One request the server saw: its path, when, and what it answered."""

    path: str
    at: float
    answer: str


@dataclass
class FlakyServer:
    """The running server: its base URL, the scripted faults and the request log."""

    root: Path
    base: str
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    """Bytes a `trickle` answer has written so far, per path."""
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, relative: str) -> str:
        """The URL of a file under the served folder."""
        return f"{self.base}/{relative}"

    def script(self, relative: str, *faults: Fault) -> None:
        """The next requests for `relative` get these faults, in order; later ones succeed."""
        with self.lock:
            self.faults["/" + relative] = list(faults)

    def attempts(self, relative: str) -> list[Hit]:
        """The requests the server saw for one file."""
        with self.lock:
            return [hit for hit in self.hits if hit.path == "/" + relative]

    def sent_of(self, relative: str) -> int:
        """How many bytes of `relative` a trickle has sent until now."""
        with self.lock:
            return self.sent.get("/" + relative, 0)

    def next_fault(self, path: str) -> Fault | None:
        """Pop the fault the next request for `path` gets (None: serve the file)."""
        with self.lock:
            queue = self.faults.get(path)
            return queue.pop(0) if queue else None

    def log(self, path: str, answer: str) -> None:
        """Remember one request."""
        with self.lock:
            self.hits.append(Hit(path, time.monotonic(), answer))


class _Handler(http.server.BaseHTTPRequestHandler):
    server_state: FlakyServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server_state
        fault = state.next_fault(self.path)
        file = state.root / self.path.lstrip("/")
        body = file.read_bytes() if file.is_file() else None
        if isinstance(fault, int) or body is None:
            status = fault if isinstance(fault, int) else 404
            state.log(self.path, str(status))
            self.send_error(status)
            return
        state.log(self.path, str(fault or "ok"))
        if fault == "truncate":
            self._headers(len(body) + 1000)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault == "stall":
            self._headers(len(body))
            self.wfile.flush()
            state.stop.wait(30)
            self.close_connection = True
        elif fault == "trickle":
            self._headers(len(body))
            for start in range(0, len(body), TRICKLE_BYTES):
                if state.stop.wait(TRICKLE_PAUSE_S):
                    break
                self.wfile.write(body[start : start + TRICKLE_BYTES])
                self.wfile.flush()
                with state.lock:
                    state.sent[self.path] = start + len(body[start : start + TRICKLE_BYTES])
        elif fault == "wrong":
            other = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
            self._headers(len(other))
            self.wfile.write(other)
        else:
            self._headers(len(body))
            self.wfile.write(body)

    def _headers(self, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up on a faulty answer is expected: print nothing."""


@contextmanager
def flaky_server(root: Path) -> Iterator[FlakyServer]:
    """Serve `root` on 127.0.0.1 (a free port) until the block ends."""
    state = FlakyServer(root, "")

    class Handler(_Handler):
        server_state = state

    server = _Server(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()


def refused_url(relative: str) -> str:
    """A loopback URL whose port nothing listens on: connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/{relative}"

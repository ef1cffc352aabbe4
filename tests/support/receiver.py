"""A real webhook receiver on a loopback address, for the delivery tests: an HTTP/1.1 server in a
thread that records every POST (raw body bytes, headers, arrival time) and answers from a script.

Each path answers its scripted replies in order, then its default (204). A reply can carry
headers (`Retry-After`), or hang: never answer, until the receiver stops. Bind it to another
loopback address (127.0.0.2) to be another destination host for the dispatcher's share.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until the receiver stops)


HANG = Reply(hang=True)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # time.time() on arrival, comparable with the database's timestamps
    status: int | None  # what was answered; None for a hang

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._defaults: dict[str, Reply] = {}
        self._received: list[Received] = []
        self._stopping = threading.Event()
        self._server = _Server((host, 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name=f"receiver-{host}")

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def script(self, path: str, *replies: Reply, default: Reply | None = None) -> None:
        """`path` answers `replies` in order, then `default` (204 unless given)."""
        with self._lock:
            self._scripts[path].extend(replies)
            if default is not None:
                self._defaults[path] = default

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def wait(self, count: int, path: str | None = None, timeout: float = 20.0) -> list[Received]:
        """At least `count` requests (to `path`) arrived; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.received(path)
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.host}{path or ''}: {len(got)} of {count} requests within {timeout:.0f} s")
            time.sleep(0.05)

    def _next_reply(self, path: str) -> Reply:
        with self._lock:
            queue = self._scripts[path]
            return queue.popleft() if queue else self._defaults.get(path, Reply())

    def _record(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases the hanging handlers
        self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the dispatcher hangs up on a hanging handler when its attempt times out


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            at = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            reply = receiver._next_reply(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            receiver._record(Received(self.path, headers, body, at, None if reply.hang else reply.status))
            if reply.hang:
                receiver._stopping.wait()
                self.close_connection = True
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def receiving(host: str = "127.0.0.1") -> Iterator[Receiver]:
    receiver = Receiver(host).start()
    try:
        yield receiver
    finally:
        receiver.stop()

"""A fake HTTP API on 127.0.0.1, in a thread: the issues endpoint of the seed's polling code and
a few misbehaving endpoints (redirects, huge and compressed bodies, slow answers)."""

from __future__ import annotations

import functools
import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

API_TOKEN = "tok-123"
ISSUES = [
    {"id": 101, "title": "Crash on save", "description": "It crashes", "created_at": "2024-05-01T10:00:00Z"},
    {"id": "b-2", "title": "Typo", "description": "Teh", "created_at": "2024-05-02T11:00:00Z"},
]


@functools.cache
def gzip_bomb() -> bytes:
    """16 MiB of zeros, about 16 KiB on the wire."""
    return gzip.compress(b"\0" * (16 * 1024 * 1024), compresslevel=9)


@dataclass
class FakeApi:
    server: ThreadingHTTPServer
    thread: threading.Thread
    hits: dict[str, int] = field(default_factory=dict)
    last_request: dict = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_fake_api() -> FakeApi:
    api: FakeApi | None = None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json", headers=()) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8") if length else ""
            api.hits[parts.path] = api.hits.get(parts.path, 0) + 1
            api.last_request = {
                "method": self.command, "path": self.path, "headers": dict(self.headers.items()), "body": body,
            }
            if parts.path == "/issues":
                if self.headers.get("Authorization") != f"Bearer {API_TOKEN}":
                    self._send(401, b'{"error":"unauthorized"}')
                    return
                since = query.get("since", [""])[0]
                self._send(200, json.dumps(ISSUES).encode(), headers=[("X-Since", since)])
            elif parts.path == "/echo":
                self._send(200, json.dumps(api.last_request).encode())
            elif parts.path == "/redirect":
                self._send(int(query.get("status", ["302"])[0]), b"", headers=[("Location", query["to"][0])])
            elif parts.path == "/chain":
                n = int(query["n"][0])
                if n <= 0:
                    self._send(200, b'{"done":true}')
                else:
                    self._send(302, b"", headers=[("Location", f"/chain?n={n - 1}")])
            elif parts.path == "/big":
                self._send(200, b"a" * int(query["size"][0]), "text/plain")
            elif parts.path == "/gzip-bomb":
                self._send(200, gzip_bomb(), "text/plain", headers=[("Content-Encoding", "gzip")])
            elif parts.path == "/gzip-ok":
                self._send(200, gzip.compress(b'{"zipped":true}'), headers=[("Content-Encoding", "gzip")])
            elif parts.path == "/slow":
                time.sleep(float(query.get("s", ["3"])[0]))
                self._send(200, b"{}")
            elif parts.path == "/latin1":
                self._send(200, "caf\u00e9".encode("latin-1"), "text/plain; charset=iso-8859-1")
            elif parts.path == "/status":
                self._send(int(query["code"][0]), b'{"problem":true}')
            else:
                self._send(200, b'{"ok":true}')

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        block_on_close = False

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="fake-api", daemon=True)
    api = FakeApi(server=server, thread=thread)
    thread.start()
    return api

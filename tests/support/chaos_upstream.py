"""The delivery chaos test's loopback world, in one thread-served HTTP server on 127.0.0.1:

- an upstream that produces items: `GET /items/<k>` answers every item produced so far for
  stream `k` (the polling code returns them as they are), and a producer thread adds one item to
  every stream each second while production runs;
- a receiver: `POST /hook` records every delivery (its `webhook-id`, headers and raw body) as it
  arrives, then answers 204 after a short delay, so that deliveries are in flight at any moment.
  A chosen share of events gets a 500 on its first attempt only, to exercise the retry (5 s).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Delivery:
    webhook_id: str
    item_id: str
    subscription_id: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float


@dataclass
class ChaosWorld:
    streams: int
    answer_delay_s: float = 0.25
    # The upstream answers after this, so that polls are in flight at any moment too.
    fetch_delay_s: float = 0.0
    # Items for which the first attempt gets 500 (by item); the retry gets 204.
    fail_first: Callable[[dict[str, Any]], bool] = lambda item: False
    items: list[list[dict[str, Any]]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    fetches: int = 0
    _seen_webhook_ids: set[str] = field(default_factory=set)
    # Requests being answered now, by the client's port: ("fetch", stream) or ("delivery", webhook-id),
    # and when they arrived.
    in_flight: dict[int, tuple[str, str, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _producing: threading.Event = field(default_factory=threading.Event)
    _producer: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def stream_url(self, k: int) -> str:
        return f"http://127.0.0.1:{self.port}/items/{k}"

    @property
    def hook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    # -- production ---------------------------------------------------------------------------

    def produce_once(self) -> None:
        with self.lock:
            for k, stream in enumerate(self.items):
                n = len(stream)
                stream.append({"id": f"{k}-{n}", "n": n, "stream": k})

    def start_production(self) -> None:
        """One item per stream now, then one per stream every second until `stop_production`."""
        self._producing.set()

        def run() -> None:
            next_at = time.monotonic()
            while self._producing.is_set():
                self.produce_once()
                next_at += 1.0
                # Wakes at once when production stops.
                self._stopped_or(next_at - time.monotonic())

        self._producer = threading.Thread(target=run, name="chaos-producer", daemon=True)
        self._producer.start()

    def _stopped_or(self, seconds: float) -> None:
        deadline = time.monotonic() + max(0.0, seconds)
        while self._producing.is_set() and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def stop_production(self) -> None:
        self._producing.clear()
        if self._producer is not None:
            self._producer.join(timeout=5)

    def produced_ids(self) -> set[str]:
        with self.lock:
            return {item["id"] for stream in self.items for item in stream}

    def received_ids(self) -> set[str]:
        with self.lock:
            return {d.item_id for d in self.deliveries}

    def in_flight_from(self, pids: set[int], arrived_within_s: float) -> list[tuple[str, str]]:
        """(kind, what) of the requests being answered now, that arrived at most `arrived_within_s`
        ago (so that they are still unanswered a moment later), whose connection belongs to one of
        these processes."""
        since = time.monotonic() - arrived_within_s
        with self.lock:
            current = {port: (kind, what) for port, (kind, what, at) in self.in_flight.items() if at >= since}
        if not current:
            return []
        owned = _socket_inodes(pids)
        by_port = _client_sockets(self.port)
        return [what for port, what in current.items() if by_port.get(port) in owned]

    def snapshot(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)

    # -- the server ---------------------------------------------------------------------------

    def start(self) -> ChaosWorld:
        world = self
        self.items = [[] for _ in range(self.streams)]

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                if body:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                prefix = "/items/"
                if not self.path.startswith(prefix):
                    self._send(404)
                    return
                k = int(self.path[len(prefix):])
                port = self.client_address[1]
                with world.lock:
                    world.fetches += 1
                    body = json.dumps(world.items[k]).encode()
                    world.in_flight[port] = ("fetch", str(k), time.monotonic())
                try:
                    time.sleep(world.fetch_delay_s)
                    self._send(200, body)
                except OSError:
                    pass  # the poller died meanwhile (kill -9)
                finally:
                    with world.lock:
                        world.in_flight.pop(port, None)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/hook":
                    self._send(404)
                    return
                payload = json.loads(raw)
                webhook_id = self.headers.get("webhook-id", "")
                port = self.client_address[1]
                with world.lock:
                    world.in_flight[port] = ("delivery", webhook_id, time.monotonic())
                    first = webhook_id not in world._seen_webhook_ids
                    world._seen_webhook_ids.add(webhook_id)
                    status = 500 if first and world.fail_first(payload["data"]) else 204
                    # Recorded on arrival: a sender killed before it reads the answer has still delivered.
                    world.deliveries.append(Delivery(
                        webhook_id, str(payload["data"]["id"]), str(payload["subscription"]["id"]),
                        {k.lower(): v for k, v in self.headers.items()}, raw, status, time.monotonic()))
                try:
                    time.sleep(world.answer_delay_s)
                    self._send(status)
                except OSError:
                    pass  # the sender died meanwhile (kill -9)
                finally:
                    with world.lock:
                        world.in_flight.pop(port, None)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a connection reset by the killed worker: expected, and not worth a traceback

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="chaos-world", daemon=True).start()
        return self

    def stop(self) -> None:
        self.stop_production()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


# -- which process holds a connection (Linux /proc) ---------------------------------------------


def descendants(pid: int) -> set[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the fields after it are fixed.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in found:
            found.add(p)
            todo.extend(children.get(p, []))
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` that still run (a zombie counts as gone)."""
    out = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            out.add(pid)
    return out


def _socket_inodes(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[len("socket:["):-1])
    return inodes


def _client_sockets(server_port: int) -> dict[int, str]:
    """The client side of every loopback TCP connection to `server_port`: its port → its inode."""
    out: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(remote.rsplit(":", 1)[1], 16) == server_port:
                out[int(local.rsplit(":", 1)[1], 16)] = inode
    return out

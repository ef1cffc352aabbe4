"""The processes that bench/delivery.py runs beside the worker: the sink (with the end-to-end
upstream), and the raw client loops it compares the worker with.

    python bench/delivery_peers.py sink --port P --hosts 4
    python bench/delivery_peers.py raw --client pinned|httpx|socket --urls U1,U2 --concurrency 50 --window 10

The sink is asyncio `Protocol` code on uvloop: it parses just enough HTTP/1.1 (the head, then
`content-length` bytes) to answer every POST `204` at once, on keep-alive connections. It listens on
127.0.0.1 … 127.0.0.N, one port, so that deliveries can go to N destination hosts. Control routes on
the same port: `GET /_count` (POSTs answered so far), `GET /_record?on=1|0` (keep each POST's
arrival time and body), `GET /_dump` (the records as JSON, cleared), `GET /_feed?rate=R&keep=K`
(start the upstream: a new item `{"id", "created"}` every 1/R s) and `GET /items` (the newest K
items, newest first): the feed that the end-to-end trigger polls.

A raw loop runs `--concurrency` callers for `--warmup` + `--window` seconds and prints one JSON line:
POSTs answered 2xx in the window, failures, seconds and the process's CPU seconds. Callers are
spread over the URLs round-robin (caller i → URL i mod n), as the worker's per-host share spreads
its slots. `pinned` is the service's own stack: `delivery.sender.send` through
`egress.transport.PinnedTransport` (`sender.new_transport()`), unsigned; `httpx` is a plain
`httpx.AsyncClient`; `socket` is a bare keep-alive HTTP/1.1 client on uvloop, to show what the sink
takes.
"""

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import time
from urllib.parse import parse_qs, urlsplit

_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
_NO_CONTENT = b"HTTP/1.1 204 No Content\r\nServer: sink\r\n\r\n"

# A delivery body of the same shape and size as the ones bench/delivery.py stores (about 330 bytes).
BODY = json.dumps({
    "type": "trigger.event", "timestamp": "2026-12-06T12:00:00.000Z",
    "data": {"id": "123456", "title": "Bench event 123456", "priority": "high", "url": "https://example.com/items/123456"},
    "trigger": {"id": "00000000-0000-0000-0000-000000000000", "slug": "bench-empty"},
    "integration": {"id": "00000000-0000-0000-0000-000000000000"},
    "subscription": {"id": "00000000-0000-0000-0000-000000000000"},
}, separators=(",", ":"))


# ------------------------------------------------------------------------------------------ sink

class Sink:
    def __init__(self) -> None:
        self.count = 0
        self.recording = False
        self.records: list[tuple[float, str, bytes]] = []
        self.items: list[dict[str, float | int]] = []
        self.keep = 20
        self._feed: asyncio.Task[None] | None = None

    async def feed(self, rate: float) -> None:
        n = 0
        start = time.monotonic()
        while True:
            n += 1
            self.items.append({"id": n, "created": time.time()})
            del self.items[: -self.keep]
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))

    def control(self, target: str) -> tuple[str, bytes]:
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/items":
            return "200 OK", json.dumps(self.items[::-1]).encode()
        if parts.path == "/_count":
            return "200 OK", json.dumps({"count": self.count}).encode()
        if parts.path == "/_record":
            self.recording = query.get("on") == "1"
            return "200 OK", b"{}"
        if parts.path == "/_dump":
            out = [{"at": at, "id": wid, "body": body.decode()} for at, wid, body in self.records]
            self.records = []
            return "200 OK", json.dumps(out).encode()
        if parts.path == "/_feed":
            if self._feed is not None:
                self._feed.cancel()
            self.items = []
            self.keep = int(query.get("keep", "20"))
            self._feed = asyncio.get_running_loop().create_task(self.feed(float(query.get("rate", "2"))))
            return "200 OK", b"{}"
        return "404 Not Found", b"{}"


class SinkProtocol(asyncio.Protocol):
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            m = _LENGTH.search(self.buf, 0, head_end + 2)
            end = head_end + 4 + (int(m.group(1)) if m else 0)
            if len(self.buf) < end:
                return
            head, body, self.buf = self.buf[:head_end], self.buf[head_end + 4 : end], self.buf[end:]
            assert self.transport is not None
            if head.startswith(b"POST "):
                self.sink.count += 1
                if self.sink.recording:
                    wid = re.search(rb"\r\nwebhook-id:[ \t]*([^\r]*)", head, re.I)
                    self.sink.records.append((time.time(), wid.group(1).decode() if wid else "", body))
                self.transport.write(_NO_CONTENT)
            else:
                status, payload = self.sink.control(head.split(b" ", 2)[1].decode("latin-1"))
                self.transport.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
                    .encode() + payload)


async def run_sink(port: int, hosts: int) -> None:
    loop = asyncio.get_running_loop()
    sink = Sink()
    server = await loop.create_server(lambda: SinkProtocol(sink), host=[f"127.0.0.{i + 1}" for i in range(hosts)],
                                      port=port, backlog=1024, reuse_address=True)
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    print("ready", flush=True)
    await stopping.wait()
    server.close()


# ------------------------------------------------------------------------------------- raw loops

def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_raw(client: str, urls: list[str], concurrency: int, warmup: float, window: float) -> dict[str, float]:
    headers = {"content-type": "application/json", "user-agent": "odeus-triggers-webhooks/1"}
    ok = failed = 0
    counting = stopping = False
    closers = []

    if client == "pinned":
        from odeus_triggers.delivery.sender import new_transport, send

        transport = new_transport()
        closers.append(transport.aclose)

        async def post(url: str) -> bool:
            outcome = await send(transport, url, BODY, headers, allow_private=True, connect_timeout=5.0,
                                 total_timeout=15.0)
            return outcome.kind == "delivered"
    elif client == "httpx":
        import httpx

        http = httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
                                 timeout=15.0, trust_env=False)
        closers.append(http.aclose)

        async def post(url: str) -> bool:
            response = await http.post(url, content=BODY, headers=headers)
            return 200 <= response.status_code < 300
    else:
        raise SystemExit(f"unknown client {client}")

    async def caller(i: int) -> None:
        nonlocal ok, failed
        url = urls[i % len(urls)]
        while not stopping:
            good = await post(url)
            if counting:
                if good:
                    ok += 1
                else:
                    failed += 1

    tasks = [asyncio.create_task(caller(i)) for i in range(concurrency)]
    await asyncio.sleep(warmup)
    counting, started, cpu = True, time.monotonic(), _cpu_s()
    await asyncio.sleep(window)
    counting, seconds, cpu = False, time.monotonic() - started, _cpu_s() - cpu
    stopping = True
    await asyncio.gather(*tasks, return_exceptions=True)
    for close in closers:
        await close()
    return {"ok": ok, "failed": failed, "seconds": seconds, "cpu_s": cpu}


async def run_socket(urls: list[str], concurrency: int, warmup: float, window: float) -> dict[str, float]:
    """A bare keep-alive client: one connection per caller, the request bytes built once."""
    ok = 0
    counting = stopping = False

    async def caller(i: int) -> None:
        nonlocal ok
        u = urlsplit(urls[i % len(urls)])
        request = (f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\ncontent-type: application/json\r\n"
                   f"content-length: {len(BODY)}\r\n\r\n{BODY}").encode()
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        while not stopping:
            writer.write(request)
            await reader.readuntil(b"\r\n\r\n")  # a 204: no body
            if counting:
                ok += 1
        writer.close()

    tasks = [asyncio.create_task(caller(i)) for i in range(concurrency)]
    await asyncio.sleep(warmup)
    counting, started, cpu = True, time.monotonic(), _cpu_s()
    await asyncio.sleep(window)
    counting, seconds, cpu = False, time.monotonic() - started, _cpu_s() - cpu
    stopping = True
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"ok": ok, "failed": 0, "seconds": seconds, "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    sink = sub.add_parser("sink")
    sink.add_argument("--port", type=int, required=True)
    sink.add_argument("--hosts", type=int, default=1)
    raw = sub.add_parser("raw")
    raw.add_argument("--client", choices=("pinned", "httpx", "socket"), required=True)
    raw.add_argument("--urls", required=True)
    raw.add_argument("--concurrency", type=int, default=50)
    raw.add_argument("--warmup", type=float, default=2.0)
    raw.add_argument("--window", type=float, default=10.0)
    args = parser.parse_args()
    if args.mode == "sink":
        import uvloop

        uvloop.run(run_sink(args.port, args.hosts))
        return
    urls = args.urls.split(",")
    if args.client == "socket":
        import uvloop

        out = uvloop.run(run_socket(urls, args.concurrency, args.warmup, args.window))
    else:
        # The default event loop, as `odeus-triggers worker` runs on.
        out = asyncio.run(run_raw(args.client, urls, args.concurrency, args.warmup, args.window))
    print(json.dumps({**out, "pid": os.getpid()}), flush=True)


if __name__ == "__main__":
    main()

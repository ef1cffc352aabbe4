"""One delivery attempt against a real receiver on 127.0.0.1: outcomes, timeouts, the address guard
and connection reuse."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_asyncio
from standardwebhooks.webhooks import Webhook

from odeus_triggers.delivery import sender
from odeus_triggers.delivery.signing import attempt_headers
from odeus_triggers.egress.transport import PinnedTransport
from odeus_triggers.subscriptions.service import new_signing_secret

BODY = '{"type":"trigger.event","data":{"id":"7"}}'


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    requests: list[dict] = field(default_factory=list)
    connections: int = 0

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """Answers POST /status?code=N[&retry_after=…], /hang (never answers in time) and /big."""
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            rec = box[0]
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            rec.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
            if parts.path == "/hang":
                time.sleep(float(query.get("s", "3")))
                return
            status = int(query.get("code", "200"))
            payload = b"x" * int(query.get("size", "0"))
            self.send_response(status)
            if status in (301, 302, 307):
                self.send_header("Location", self.url_elsewhere())
            if "retry_after" in query:
                self.send_header("Retry-After", query["retry_after"])
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def url_elsewhere(self) -> str:
            return f"http://127.0.0.1:{box[0].port}/status?code=200&redirected=1"

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        block_on_close = False

        def process_request(self, request, client_address) -> None:
            box[0].connections += 1
            super().process_request(request, client_address)

        def handle_error(self, request, client_address) -> None:
            pass  # the sender hangs up on purpose: after a timeout, or a large answer

    server = Server(("127.0.0.1", 0), Handler)
    box.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box[0]
    server.shutdown()
    server.server_close()


@pytest_asyncio.fixture
async def transport() -> AsyncIterator[PinnedTransport]:
    t = sender.new_transport()
    yield t
    await t.aclose()


def _signed(secret: str = "whsec_" + "A" * 43) -> dict[str, str]:
    return attempt_headers("msg_test", BODY, secret)


async def test_2xx_is_delivered_with_the_exact_signed_body(receiver, transport):
    secret = new_signing_secret()
    for code in (200, 202, 204):
        outcome = await sender.send(transport, receiver.url(f"/status?code={code}"), BODY, _signed(secret), allow_private=True)
        assert (outcome.kind, outcome.status, outcome.error) == ("delivered", code, None)
        assert 0 < outcome.duration_ms < 5000
    seen = receiver.requests[-1]
    assert seen["body"] == BODY.encode()
    assert seen["headers"]["Host"] == f"127.0.0.1:{receiver.port}"
    assert seen["headers"]["user-agent"].startswith("odeus-triggers-webhooks/")
    Webhook(secret).verify(seen["body"], seen["headers"])


async def test_other_statuses_fail(receiver, transport):
    outcome = await sender.send(transport, receiver.url("/status?code=500"), BODY, _signed(), allow_private=True)
    assert (outcome.kind, outcome.status, outcome.error, outcome.retry_after_s) == ("failed", 500, "HTTP 500", None)
    outcome = await sender.send(transport, receiver.url("/status?code=410"), BODY, _signed(), allow_private=True)
    assert (outcome.kind, outcome.status) == ("gone", 410)


async def test_a_redirect_is_a_failure_and_is_not_followed(receiver, transport):
    before = len(receiver.requests)
    outcome = await sender.send(transport, receiver.url("/status?code=302"), BODY, _signed(), allow_private=True)
    assert (outcome.kind, outcome.status) == ("failed", 302)
    assert "redirect" in (outcome.error or "")
    assert len(receiver.requests) == before + 1


async def test_retry_after_on_429_and_503(receiver, transport):
    outcome = await sender.send(transport, receiver.url("/status?code=429&retry_after=120"), BODY, _signed(),
                                allow_private=True)
    assert (outcome.kind, outcome.status, outcome.retry_after_s) == ("failed", 429, 120)
    date = format_datetime(datetime.now(UTC) + timedelta(hours=5), usegmt=True).replace(" ", "+")
    outcome = await sender.send(transport, receiver.url(f"/status?code=503&retry_after={date}"), BODY, _signed(),
                                allow_private=True)
    assert (outcome.status, outcome.retry_after_s) == (503, 3600)


async def test_a_hanging_receiver_times_out(receiver, transport):
    started = time.monotonic()
    outcome = await sender.send(transport, receiver.url("/hang?s=3"), BODY, _signed(), allow_private=True,
                                total_timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert (outcome.kind, outcome.status) == ("failed", None)
    assert outcome.error == "timeout: 127.0.0.1 did not answer within 0.5 s"
    assert 450 < outcome.duration_ms < 1500


async def test_a_refused_connection_fails(transport):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the attempt: nothing listens there
    outcome = await sender.send(transport, f"http://127.0.0.1:{port}/x?token=SECRET", BODY, _signed(), allow_private=True)
    assert (outcome.kind, outcome.status) == ("failed", None)
    assert outcome.error and outcome.error.startswith("could not connect to 127.0.0.1")
    assert "SECRET" not in outcome.error and len(outcome.error) <= 500


async def test_private_address_is_refused_without_connecting(receiver, transport):
    before = receiver.connections
    for url in (receiver.url("/status?code=200"), receiver.url("/status?code=200", host="localhost")):
        outcome = await sender.send(transport, url, BODY, _signed(), allow_private=False)
        assert (outcome.kind, outcome.status, outcome.error) == ("failed", None, "address_not_allowed")
    assert receiver.connections == before


async def test_every_attempt_resolves_again_and_pools_are_per_host(receiver):
    answers = {"a.hooks.test": ["127.0.0.1"], "b.hooks.test": ["127.0.0.1"]}
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[host]

    transport = PinnedTransport(resolver=resolver, keepalive=True)
    try:
        before = receiver.connections
        for _ in range(3):
            outcome = await sender.send(transport, receiver.url("/status?code=200", host="a.hooks.test"), BODY, _signed(),
                                        allow_private=True)
            assert outcome.kind == "delivered"
        assert receiver.requests[-1]["headers"]["Host"] == f"a.hooks.test:{receiver.port}"
        assert receiver.connections == before + 1  # kept alive
        await sender.send(transport, receiver.url("/status?code=200", host="b.hooks.test"), BODY, _signed(),
                          allow_private=True)
        assert receiver.connections == before + 2  # same IP, other name: not the same connection
        assert asked == ["a.hooks.test"] * 3 + ["b.hooks.test"]
        answers["a.hooks.test"] = ["8.8.8.8", "127.0.0.1"]  # rebound since the last attempt
        outcome = await sender.send(transport, receiver.url("/status?code=200", host="a.hooks.test"), BODY, _signed(),
                                    allow_private=False)
        assert outcome.error == "address_not_allowed"
    finally:
        await transport.aclose()


async def test_a_large_answer_is_not_read(receiver, transport):
    outcome = await sender.send(transport, receiver.url("/status?code=200&size=5000000"), BODY, _signed(),
                                allow_private=True)
    assert (outcome.kind, outcome.status) == ("delivered", 200)


async def test_an_invalid_url_fails(transport):
    for url in ("ftp://127.0.0.1/", "http://", "not a url"):
        outcome = await sender.send(transport, url, BODY, _signed(), allow_private=True)
        assert (outcome.kind, outcome.error) == ("failed", "invalid webhook URL")


async def test_least_recently_used_pools_are_closed_past_the_limit(receiver):
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    transport = PinnedTransport(resolver=resolver, keepalive=True, max_pools=1)
    try:
        before = receiver.connections
        for host in ("a.hooks.test", "a.hooks.test", "b.hooks.test", "a.hooks.test"):
            outcome = await sender.send(transport, receiver.url("/status?code=204", host=host), BODY, _signed(),
                                        allow_private=True)
            assert outcome.kind == "delivered"
        assert receiver.connections == before + 3  # a's pool was closed when b's opened
    finally:
        await transport.aclose()

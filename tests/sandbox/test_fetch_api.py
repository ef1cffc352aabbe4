"""fetch() of polling code against hostile upstreams, through the test-run route: a charset may not
stall the API or pick a non-text codec, and a cross-origin redirect does not carry the run's secrets."""

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from support.fake_http import FakeApi, start_fake_api
from support.helpers import Tenant, client_of, create_and_dry_run, make_tenant, started_app


class Upstream:
    """Serves whatever `routes` maps a path to: (Content-Type, body bytes)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, bytes]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                content_type, body = routes[self.path]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, content_type: str, body: bytes) -> str:
        path = f"/{uuid.uuid4().hex}"
        self.routes[path] = (content_type, body)
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def apis() -> Iterator[tuple[FakeApi, FakeApi]]:
    """Two fake APIs: same host, different ports, hence different origins."""
    a, b = start_fake_api(), start_fake_api()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
async def dev_app(settings: Any) -> AsyncIterator[Any]:
    async with started_app(settings, polling_allow_private_network=True, polling_timeout_seconds=10) as app:
        yield app


@pytest.fixture
async def api(dev_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(dev_app) as c:
        yield c


@pytest.fixture
async def owner(dev_app: Any) -> Tenant:
    return await make_tenant(dev_app)


async def run(api: httpx.AsyncClient, owner: Tenant, code: str, secrets: dict[str, str] | None = None) -> dict:
    result = await create_and_dry_run(api, owner, code, {"secrets": secrets or {}})
    assert result["ok"] is True, result
    return result


async def fetched_text(api: httpx.AsyncClient, owner: Tenant, url: str) -> str:
    result = await run(api, owner, f"const r = await fetch({url!r});\nreturn [{{id: 1, text: await r.text()}}];")
    return result["events"][0]["text"]


# --------------------------------------------------------------------------------------- charset


async def test_a_punycode_charset_does_not_stall_the_api(api, owner, upstream):
    # Punycode decodes ASCII in quadratic time: 300 kB used to hold the event loop for seconds.
    body = b"x-" + b"y" * 300_000
    url = upstream.serve("text/plain; charset=punycode", body)
    code = f"const t = await (await fetch({url!r})).text();\nreturn [{{id: 1, head: t.slice(0, 3), length: t.length}}];"
    run_task = asyncio.create_task(run(api, owner, code))
    # Time from one answer to the next, sleep included: a blocked loop shows up wherever it strikes.
    gaps, last = [], time.monotonic()
    while not run_task.done():
        assert (await api.get("/healthz")).status_code == 200
        gaps.append(time.monotonic() - last)
        last = time.monotonic()
        await asyncio.sleep(0.02)
    result = await run_task
    assert len(gaps) > 1 and max(gaps) < 1.0, max(gaps)
    assert result["events"] == [{"id": 1, "head": "x-y", "length": 300_002}]


@pytest.mark.parametrize(
    "charset", ["punycode", "rot13", "rot_13", "hex", "base64", "idna", "zlib", "uu", "undefined", "utf-7", "bogus", ""]
)
async def test_a_charset_that_is_not_a_web_text_encoding_means_utf8(api, owner, upstream, caplog, charset):
    url = upstream.serve(f"text/plain; charset={charset}", "héllo wörld +AGE-".encode())
    with caplog.at_level(logging.WARNING):
        assert await fetched_text(api, owner, url) == "héllo wörld +AGE-"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        ("text/plain; charset=windows-1252", b"\x80 caf\xe9", "€ café"),
        # The web's label table: Latin-1 and ASCII labels name windows-1252.
        ("text/csv;CHARSET=ISO-8859-1", b"\x80 caf\xe9", "€ café"),
        ("text/plain; charset=\"Shift_JIS\"", "日本語".encode("cp932"), "日本語"),
        ("text/plain; charset= 'EUC-KR' ", "한국어".encode("cp949"), "한국어"),
        ("text/plain; charset=koi8-r", "привет".encode("koi8-r"), "привет"),
        ("text/plain; charset=gb2312", "中文".encode("gb18030"), "中文"),
        ("text/plain; charset=utf-16", "\ufeffhi".encode("utf-16-be"), "hi"),
        ("application/json", b'\xef\xbb\xbf{"a":1}', '{"a":1}'),
        ("application/json; charset=utf-8", "é".encode() + b"\xff", "é\ufffd"),
    ],
)
async def test_real_text_encodings_still_decode(api, owner, upstream, content_type, body, text):
    assert await fetched_text(api, owner, upstream.serve(content_type, body)) == text


# ------------------------------------------------------------------------------------- redirects

SECRET = "sk-" + uuid.uuid4().hex


def echoed_headers(result: dict) -> dict[str, str]:
    return {k.lower(): v for k, v in json.loads(result["events"][0]["body"])["headers"].items()}


def redirect_code(start: str, headers: dict[str, str]) -> str:
    return (
        f"const r = await fetch({start!r}, {{headers: {json.dumps(headers)}}});\n"
        "return [{id: 1, url: r.url, body: await r.text()}];"
    )


async def test_a_cross_origin_redirect_drops_the_headers_that_carry_a_secret(api, owner, apis):
    a, b = apis
    headers = {
        "X-Api-Key": SECRET, "X-Signature": f"v1,key={SECRET};x", "X-Trace": "plain",
        "X-Short": "ab", "Authorization": "Basic abc",
    }
    result = await run(
        api, owner, redirect_code(a.url("/redirect?to=" + b.url("/echo")), headers),
        secrets={"API_KEY": SECRET, "SHORT": "ab", "EMPTY": ""},
    )
    assert result["events"][0]["url"] == b.url("/echo")
    seen = echoed_headers(result)
    assert "x-api-key" not in seen and "x-signature" not in seen and "authorization" not in seen
    # Values of fewer than 4 characters are not matched: they would drop nearly anything.
    assert seen["x-trace"] == "plain" and seen["x-short"] == "ab"


async def test_a_same_origin_redirect_keeps_every_header(api, owner, apis):
    a, _ = apis
    headers = {"X-Api-Key": SECRET, "X-Trace": "plain", "Authorization": f"Bearer {SECRET}"}
    result = await run(api, owner, redirect_code(a.url("/redirect?to=/echo"), headers), secrets={"API_KEY": SECRET})
    assert result["events"][0]["url"] == a.url("/echo")
    seen = echoed_headers(result)
    # The echo carries the secret back, and the test run's answer redacts it: so it was sent as it is.
    assert seen["x-api-key"] == "[redacted]" and seen["x-trace"] == "plain" and seen["authorization"] == "Bearer [redacted]"

"""Requests from web pages on other origins are refused with 403, at both bases and on every path."""

import httpx
import pytest
from pydantic import ValidationError
from starlette.responses import PlainTextResponse

from odeus_triggers.config import Settings
from odeus_triggers.edge.browser_block import BrowserBlockMiddleware, normalize_origin
from odeus_triggers.triggers.examples import SEED_TRIGGER

from support.helpers import assert_problem, create_path

BLOCKING_HEADERS = {
    "another origin": {"Origin": "https://evil.example"},
    "another port": {"Origin": "http://testserver:8080"},
    "another scheme": {"Origin": "https://testserver"},
    "opaque origin": {"Origin": "null"},
    "malformed origin": {"Origin": "testserver"},
    "cross-site fetch": {"Sec-Fetch-Site": "cross-site"},
    "same-site fetch": {"Sec-Fetch-Site": "same-site"},
    "same origin but cross-site fetch": {"Origin": "http://testserver", "Sec-Fetch-Site": "cross-site"},
}
PASSING_HEADERS = {
    "no browser headers": {},
    "own origin": {"Origin": "http://testserver"},
    "own origin with its default port": {"Origin": "HTTP://TestServer:80"},
    "same-origin fetch": {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},
    "user navigation": {"Sec-Fetch-Site": "none"},
}


def assert_no_cors_grant(response: httpx.Response) -> None:
    granted = [name for name in response.headers if name.lower().startswith("access-control-")]
    assert granted == [], granted


async def trigger_count(client: httpx.AsyncClient, tenant) -> int:
    # No read route yet: creating the same name again tells whether the first attempt was stored.
    response = await client.post(create_path("", tenant.integration_id), json=SEED_TRIGGER, headers=tenant.auth)
    return 1 if response.status_code == 409 else 0


@pytest.mark.parametrize("headers", BLOCKING_HEADERS.values(), ids=BLOCKING_HEADERS.keys())
async def test_browser_requests_from_other_origins_are_refused(client, tenant, base, headers):
    response = await client.post(
        create_path(base, tenant.integration_id), json=SEED_TRIGGER, headers={**tenant.auth, **headers}
    )
    body = assert_problem(response, 403, "browser_request_blocked")
    assert "server" in body["detail"]
    assert tenant.key not in response.text
    assert_no_cors_grant(response)
    assert await trigger_count(client, tenant) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
         "Access-Control-Request-Headers": "authorization, content-type"},
        {"Access-Control-Request-Method": "POST"},
        {"Origin": "http://testserver", "Access-Control-Request-Method": "POST"},
    ],
    ids=["cross-origin", "no origin", "claims own origin"],
)
async def test_cors_preflight_is_refused(client, tenant, base, headers):
    response = await client.options(create_path(base, tenant.integration_id), headers=headers)
    body = assert_problem(response, 403, "browser_request_blocked")
    assert "preflight" in body["detail"] or "Origin" in body["detail"]
    assert_no_cors_grant(response)


@pytest.mark.parametrize("headers", PASSING_HEADERS.values(), ids=PASSING_HEADERS.keys())
async def test_same_origin_and_server_requests_pass(client, tenant, base, headers):
    response = await client.post(
        create_path(base, tenant.integration_id), json=SEED_TRIGGER, headers={**tenant.auth, **headers}
    )
    assert response.status_code == 201, response.text
    assert_no_cors_grant(response)


@pytest.mark.parametrize(
    "path", ["/openapi.json", "/docs", "/docs/assets/swagger-ui-bundle.js", "/healthz", "/metrics", "/no-such-route"]
)
async def test_every_path_is_guarded(client, path):
    refused = await client.get(path, headers={"Origin": "https://evil.example"})
    assert_problem(refused, 403, "browser_request_blocked")
    navigated = await client.get(path, headers={"Sec-Fetch-Site": "none"})
    assert navigated.status_code == (404 if path == "/no-such-route" else 200)
    assert_no_cors_grant(navigated)


async def test_blocked_request_with_a_body_closes_the_connection(client, tenant):
    # The body is never read, so the connection cannot be reused for a next request.
    response = await client.post(
        create_path("", tenant.integration_id), content=b"x" * 100, headers={"Origin": "https://evil.example"}
    )
    assert_problem(response, 403, "browser_request_blocked")
    assert response.headers["connection"] == "close"


def _guarded(inner_headers: dict[str, str] | None = None, **kwargs) -> httpx.AsyncClient:
    async def inner(scope, receive, send):
        await PlainTextResponse("ok", headers=inner_headers)(scope, receive, send)

    transport = httpx.ASGITransport(app=BrowserBlockMiddleware(inner, **kwargs))
    return httpx.AsyncClient(transport=transport, base_url="http://internal:8000")


async def test_public_origins_allow_a_proxy_that_rewrites_host():
    async with _guarded(public_origins=["https://api.example.com"]) as c:
        assert (await c.get("/", headers={"Origin": "https://api.example.com"})).status_code == 200
        assert (await c.get("/", headers={"Origin": "https://api.example.com:443"})).status_code == 200
        assert (await c.get("/", headers={"Origin": "http://internal:8000"})).status_code == 200
        assert (await c.get("/", headers={"Origin": "https://other.example.com"})).status_code == 403


async def test_cors_headers_from_inside_are_stripped():
    granting = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": "true", "X-Kept": "1"}
    async with _guarded(granting) as c:
        response = await c.get("/")
    assert response.status_code == 200
    assert_no_cors_grant(response)
    assert response.headers["x-kept"] == "1"


def test_public_origin_setting_is_validated():
    assert Settings(public_origin=" https://a.example , http://b.example:8080 ").public_origins == [
        "https://a.example", "http://b.example:8080"]
    for bad in ("a.example", "https://a.example/path", "ftp://a.example", "https://"):
        with pytest.raises(ValidationError):
            Settings(public_origin=bad)


@pytest.mark.parametrize(
    ("origin", "normalized"),
    [
        ("https://Example.COM:443", "https://example.com"),
        ("http://example.com:8080", "http://example.com:8080"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("null", None),
        ("http://user@example.com", None),
        ("http://example.com:99999", None),
    ],
)
def test_normalize_origin(origin, normalized):
    assert normalize_origin(origin) == normalized

"""Rate limits: headers on every API response, per-workspace and per-address limits, Redis sharing
and the in-process fallback. Apps here get their own small limits; Redis is the real one."""

import logging
import re
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import event

from odeus_triggers.app import create_app
from odeus_triggers.auth import keys

from support.helpers import assert_problem, create_path, make_tenant

RATE_LIMIT = re.compile(r'^"(?P<policy>[a-z]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


@asynccontextmanager
async def running_app(settings: Any, **overrides: Any) -> AsyncIterator[Any]:
    """An app of its own: the run's settings (high limits, no Redis) changed by `overrides`."""
    app = create_app(settings.model_copy(update={"redis_url": None, **overrides}))
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: Any, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def rate_state(response: httpx.Response) -> tuple[str, int, int]:
    match = RATE_LIMIT.match(response.headers["ratelimit"])
    assert match, response.headers["ratelimit"]
    return match["policy"], int(match["r"]), int(match["t"])


def address() -> str:
    return f"198.51.100.{uuid.uuid4().int % 250 + 1}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def limited(settings: Any) -> AsyncIterator[Any]:
    async with running_app(settings, rate_limit="50/minute", rate_limit_unauthenticated="20/minute") as app:
        yield app


async def test_every_api_response_carries_the_headers_and_they_count_down(limited, base):
    tenant = await make_tenant(limited)
    async with client_for(limited, address()) as c:
        path = create_path(base, tenant.integration_id)
        responses = [
            await c.post(path, json={"name": "Headers"}, headers=tenant.auth),
            await c.post(create_path(base, "not-a-uuid"), json={"name": "x"}, headers=tenant.auth),
            await c.post(create_path(base, str(uuid.uuid4())), json={"name": "x"}, headers=tenant.auth),
            await c.get(f"{base}/integrations/v1/no/such/route", headers=tenant.auth),
            await c.post(path, content=b"{}", headers={**tenant.auth, "Origin": "https://elsewhere.example"}),
            await c.post(path, content=b"x" * (300 * 1024), headers={**tenant.auth, "Content-Type": "application/json"}),
        ]
        assert [r.status_code for r in responses] == [201, 400, 404, 404, 403, 413]
        for response in responses:
            assert response.headers["ratelimit-policy"] == '"workspace";q=50;w=60'
        remaining = [rate_state(r)[1] for r in responses]
        assert remaining == list(range(49, 43, -1))
        assert all(0 < rate_state(r)[2] <= 60 for r in responses)

        unauthenticated = [await c.post(path, json={"name": "x"}) for _ in range(2)]
        for response in unauthenticated:
            assert_problem(response, 401, "unauthorized")
            assert response.headers["ratelimit-policy"] == '"unauthenticated";q=20;w=60'
        assert [rate_state(r)[1] for r in unauthenticated] == [19, 18]


async def test_routes_outside_the_api_are_not_counted(limited):
    async with client_for(limited, address()) as c:
        for path in ("/healthz", "/openapi.json", "/docs"):
            response = await c.get(path)
            assert response.status_code == 200, path
            assert "ratelimit" not in response.headers and "ratelimit-policy" not in response.headers


async def test_a_workspace_over_its_limit_gets_429_and_another_is_unaffected(settings):
    seen: list[dict[str, Any]] = []
    async with running_app(settings, rate_limit="3/minute") as app:

        async def spy(scope, receive, send):  # type: ignore[no-untyped-def]
            await app(scope, receive, send)
            if scope["type"] == "http":
                seen.append(dict(scope.get("state", {})))

        mine, theirs = await make_tenant(app), await make_tenant(app)
        transport = httpx.ASGITransport(app=spy, client=(address(), 40000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            # Both bases draw on the same allowance.
            for i, base in enumerate(("", "/api/public", "")):
                response = await c.post(create_path(base, mine.integration_id), json={"name": f"N{i}"}, headers=mine.auth)
                assert response.status_code == 201, response.text
            assert rate_state(response) == ("workspace", 0, rate_state(response)[2])

            refused = await c.post(create_path("/api/public", mine.integration_id), json={"name": "Over"}, headers=mine.auth)
            problem = assert_problem(refused, 429, "rate_limited")
            retry_after = int(refused.headers["retry-after"])
            policy, remaining, reset = rate_state(refused)
            assert (policy, remaining) == ("workspace", 0) and 1 <= retry_after <= 60 and reset == retry_after
            assert "3 requests per 60 seconds for this workspace" in problem["detail"]
            assert f"retry in {retry_after} second" in problem["detail"]
            assert seen[-1]["rate_limited"] is True and seen[-1]["rate_limit_policy"] == "workspace"
            assert "rate_limited" not in seen[0]

            other = await c.post(create_path("", theirs.integration_id), json={"name": "Fine"}, headers=theirs.auth)
            assert other.status_code == 201
            assert rate_state(other)[:2] == ("workspace", 2)


async def test_requests_without_a_valid_key_are_limited_per_address_before_the_database(settings):
    # No verification cache, so that a valid key can only be told from a guess by the database.
    async with running_app(settings, rate_limit_unauthenticated="3/minute", auth_cache_seconds=0) as app:
        valid = await make_tenant(app)
        lookups: list[str] = []
        event.listen(app.state.engine.sync_engine, "before_cursor_execute",
                     lambda conn, cursor, statement, *args: lookups.append(statement) if "api_keys" in statement else None)
        flooding, other = address(), address()
        path = create_path("", valid.integration_id)
        async with client_for(app, flooding) as c:
            guesses = [{"Authorization": f"Bearer {keys.generate_key()}"}, {}, {"Authorization": "Bearer nope"}]
            for headers in guesses:
                assert_problem(await c.post(path, json={"name": "x"}, headers=headers), 401, "unauthorized")
            assert len(lookups) == 1  # only the well-formed guess was looked up

            lookups.clear()
            over = await c.post(path, json={"name": "x"}, headers={"Authorization": f"Bearer {keys.generate_key()}"})
            problem = assert_problem(over, 429, "rate_limited")
            assert "without a valid API key from this address" in problem["detail"]
            assert rate_state(over)[:2] == ("unauthenticated", 0)
            # A valid key from the flooding address is refused too: telling it from a guess would
            # take the very lookup that the limit keeps away from the database.
            assert_problem(await c.post(path, json={"name": "x"}, headers=valid.auth), 429, "rate_limited")
            assert lookups == []

        async with client_for(app, other) as c:
            assert (await c.post(path, json={"name": "From elsewhere"}, headers=valid.auth)).status_code == 201
            assert_problem(await c.post(path, json={"name": "x"}), 401, "unauthorized")


async def test_valid_keys_do_not_spend_the_address_allowance(settings):
    async with running_app(settings, rate_limit_unauthenticated="2/minute") as app:
        tenant = await make_tenant(app)
        async with client_for(app, address()) as c:
            for i in range(4):
                ok = await c.post(create_path("", tenant.integration_id), json={"name": f"T{i}"}, headers=tenant.auth)
                assert ok.status_code == 201
            for _ in range(2):
                assert_problem(await c.post(create_path("", tenant.integration_id), json={}), 401, "unauthorized")
            assert_problem(await c.post(create_path("", tenant.integration_id), json={}), 429, "rate_limited")


async def test_a_recently_verified_key_is_served_even_from_a_flooding_address(settings):
    # Its verification is cached, so serving it costs the database nothing.
    async with running_app(settings, rate_limit_unauthenticated="1/minute", auth_cache_seconds=60) as app:
        tenant = await make_tenant(app)
        path = create_path("", tenant.integration_id)
        async with client_for(app, address()) as c:
            assert (await c.post(path, json={"name": "Warm"}, headers=tenant.auth)).status_code == 201
            assert_problem(await c.post(path, json={}), 401, "unauthorized")
            assert_problem(await c.post(path, json={}), 429, "rate_limited")
            assert (await c.post(path, json={"name": "Still"}, headers=tenant.auth)).status_code == 201


async def test_ipv6_clients_are_counted_by_their_64_bit_prefix(settings):
    async with running_app(settings, rate_limit_unauthenticated="1/minute") as app:
        async with client_for(app, "2001:db8:1:2::10") as first, client_for(app, "2001:db8:1:2::99") as second:
            path = create_path("", str(uuid.uuid4()))
            assert_problem(await first.post(path, json={}), 401, "unauthorized")
            assert_problem(await second.post(path, json={}), 429, "rate_limited")


async def test_a_database_outage_during_the_key_lookup_is_a_503_with_headers(settings, tmp_path):
    broken = SecretStr(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    async with running_app(settings, database_url=broken) as app, client_for(app, address()) as c:
        response = await c.post(create_path("", str(uuid.uuid4())), json={},
                                headers={"Authorization": f"Bearer {keys.generate_key()}"})
        assert_problem(response, 503, "service_unavailable")
        assert rate_state(response)[0] == "unauthenticated"


async def test_two_app_instances_share_one_limit_through_redis(settings, redis_url, redis_prefix):
    shared = {"redis_url": SecretStr(redis_url), "rate_limit_key_prefix": redis_prefix, "rate_limit": "4/minute"}
    async with running_app(settings, **shared) as one, running_app(settings, **shared) as two:
        assert one.state.rate_counter.shared and two.state.rate_counter.shared
        tenant = await make_tenant(one)
        async with client_for(one, address()) as a, client_for(two, address()) as b:
            remaining = []
            for i, c in enumerate([a, b, a, b]):
                response = await c.post(create_path("", tenant.integration_id), json={"name": f"S{i}"}, headers=tenant.auth)
                assert response.status_code == 201
                remaining.append(rate_state(response)[1])
            assert remaining == [3, 2, 1, 0]
            for c in (a, b):
                over = await c.post(create_path("", tenant.integration_id), json={"name": "Over"}, headers=tenant.auth)
                assert_problem(over, 429, "rate_limited")


async def test_with_redis_unreachable_requests_are_served_and_counted_in_process(settings, caplog):
    caplog.set_level(logging.WARNING, logger="odeus_triggers.ratelimit")
    unreachable = SecretStr(f"redis://127.0.0.1:{closed_port()}/0")
    async with running_app(settings, redis_url=unreachable, rate_limit="3/minute") as app:
        assert not app.state.rate_counter.shared
        tenant = await make_tenant(app)
        async with client_for(app, address()) as c:
            for i in range(3):
                response = await c.post(create_path("", tenant.integration_id), json={"name": f"F{i}"}, headers=tenant.auth)
                assert response.status_code == 201
                assert rate_state(response)[:2] == ("workspace", 2 - i)
            assert_problem(
                await c.post(create_path("", tenant.integration_id), json={}, headers=tenant.auth), 429, "rate_limited"
            )
    warnings = [r for r in caplog.records if r.name == "odeus_triggers.ratelimit" and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "counting in process" in warnings[0].getMessage()

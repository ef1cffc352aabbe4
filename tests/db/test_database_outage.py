"""While the database is down the API answers 503 with Retry-After within seconds; it recovers alone.

The main test brings its own Postgres cluster and stops it, so it runs with or without
TEST_DATABASE_URL and never touches a shared server.
"""

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from odeus_triggers.app import create_app
from odeus_triggers.auth import keys
from odeus_triggers.config import Settings
from odeus_triggers.db.migrate import upgrade_to_head
from odeus_triggers.db.sql import is_outage

from support.helpers import TEST_ENCRYPTION_KEY, assert_problem, create_path, make_tenant
from support.throwaway_postgres import ThrowawayPostgres, running_cluster

ANSWER_WITHIN = 5.0  # seconds: what "nothing hangs" means here
RECOVERY_WITHIN = 30.0


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "exc, outage",
    [
        (DBAPIError("SELECT 1", None, _Orig("57P03")), True),  # the database system is starting up
        (DBAPIError("SELECT 1", None, _Orig("57P01")), True),  # terminating connection: admin command
        (DBAPIError("SELECT 1", None, _Orig("08006")), True),
        (DBAPIError("SELECT 1", None, _Orig("53300")), True),  # too many connections
        (DBAPIError("SELECT 1", None, _Orig("42P01")), False),  # undefined table: a bug, not an outage
        (IntegrityError("INSERT", None, _Orig("23505")), False),
        (OSError("Multiple exceptions: [Errno 111] Connect call failed"), True),
        (ConnectionRefusedError(111, "refused"), True),
        (ValueError("bug"), False),
    ],
    ids=["starting-up", "admin-shutdown", "connection-failure", "too-many-connections", "undefined-table",
         "unique-violation", "multiple-addresses", "refused", "bug"],
)
def test_outage_classification(exc, outage):
    assert is_outage(exc) is outage


def make_settings(database_url: str, **overrides: object) -> Settings:
    # Not conftest's: `from conftest import` may find tests/polling/conftest.py first.
    values: dict[str, object] = {"database_url": database_url, "rate_limit": "100000/minute",
                                 "rate_limit_unauthenticated": "100000/minute",
                                 "encryption_keys": TEST_ENCRYPTION_KEY, **overrides}
    return Settings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def serving(database_url: str, **overrides: object) -> AsyncIterator[tuple[object, httpx.AsyncClient]]:
    app = create_app(make_settings(database_url, **overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


async def timed(request) -> tuple[httpx.Response, float]:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


def assert_unavailable(response: httpx.Response, elapsed: float) -> None:
    assert_problem(response, 503, "service_unavailable")
    assert int(response.headers["retry-after"]) > 0
    assert elapsed < ANSWER_WITHIN, f"answered in {elapsed:.1f} s"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_an_unreachable_database_is_503_at_once():
    url = f"postgresql+asyncpg://odeus@127.0.0.1:{_free_port()}/odeus"  # nothing listens there
    async with serving(url) as (_, client):
        path = create_path("", "7b0c1c3e-0000-4000-8000-000000000001")
        response, elapsed = await timed(
            client.post(path, json={"name": "x"}, headers={"Authorization": f"Bearer {keys.generate_key()}"})
        )
        assert_unavailable(response, elapsed)
        assert_unavailable(*await timed(client.get("/readyz")))
        assert (await client.get("/healthz")).status_code == 200


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word, like a frozen or partitioned server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


async def test_a_silent_database_is_503_within_the_timeouts(silent_server):
    url = f"postgresql+asyncpg://odeus@127.0.0.1:{silent_server}/odeus"
    async with serving(url) as (_, client):
        assert_unavailable(*await timed(client.get("/readyz")))
        path = create_path("", "7b0c1c3e-0000-4000-8000-000000000001")
        response, elapsed = await timed(
            client.post(path, json={"name": "x"}, headers={"Authorization": f"Bearer {keys.generate_key()}"})
        )
        assert_unavailable(response, elapsed)


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    with running_cluster() as cluster:
        yield cluster


async def test_postgres_going_down_gives_503_and_coming_back_recovers_without_restart(postgres):
    await upgrade_to_head(make_settings(postgres.url))
    async with serving(postgres.url) as (app, client):
        tenant = await make_tenant(app)
        path = create_path("", tenant.integration_id)
        names = iter(f"Outage {n}" for n in range(1000))

        def create(auth: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
            return client.post(path, json={"name": next(names)}, headers=auth or tenant.auth)

        assert (await create()).status_code == 201
        assert (await client.get("/readyz")).status_code == 200

        # In a thread, so the event loop keeps running as it would in production.
        await asyncio.to_thread(postgres.stop, "immediate")
        timings = []
        for _ in range(3):
            # The key and the integration are cached, so the INSERT is the first to fail.
            response, elapsed = await timed(create())
            assert_unavailable(response, elapsed)
            timings.append(elapsed)
        unknown_key = {"Authorization": f"Bearer {keys.generate_key()}"}
        assert_unavailable(*await timed(create(unknown_key)))  # 503, not 401: the key was never checked
        idempotent = {**tenant.auth, "Idempotency-Key": uuid.uuid4().hex}
        assert_unavailable(*await timed(create(idempotent)))
        response, elapsed = await timed(client.get("/readyz"))
        assert_unavailable(response, elapsed)
        timings.append(elapsed)
        assert (await client.get("/healthz")).status_code == 200
        assert app.state.metrics.registry.get_sample_value(
            "odeus_http_requests_total",
            {"method": "POST", "route": "/integrations/v1/{integrationId}/triggers/create", "status": "503"},
        ) >= 4

        await asyncio.to_thread(postgres.start)
        started = time.monotonic()
        while True:
            response = await create()
            if response.status_code == 201:
                break
            assert_unavailable(response, 0)
            assert time.monotonic() - started < RECOVERY_WITHIN, "no recovery"
            await asyncio.sleep(0.5)
        recovered = time.monotonic() - started
        assert (await client.get("/readyz")).status_code == 200
        assert (await create(unknown_key)).status_code == 401
        assert (await create(idempotent)).status_code == 201  # the failed attempt left no record

        # A restart nobody noticed: the pool's dead connections are replaced on checkout, so the
        # first request after it succeeds.
        await asyncio.to_thread(postgres.stop, "fast")
        await asyncio.to_thread(postgres.start)
        await asyncio.sleep(0.2)
        first = await asyncio.gather(*(create() for _ in range(5)))
        assert [r.status_code for r in first] == [201] * 5

    print(f"\noutage: 503 in {max(timings) * 1000:.0f} ms at most; recovered {recovered:.2f} s after start")


async def test_a_frozen_postgres_gives_503_within_the_statement_timeout(postgres):
    # Short time-outs keep the test quick; the bound is statement timeout + 2 s (SQLAlchemy's
    # graceful close of the dead connection) for a request caught mid-query, the connect time-out after.
    timeouts = {"db_statement_timeout_seconds": 1.0, "db_connect_timeout_seconds": 1.0}
    await upgrade_to_head(make_settings(postgres.url))
    async with serving(postgres.url, **timeouts) as (app, client):
        tenant = await make_tenant(app)
        path = create_path("", tenant.integration_id)
        names = iter(f"Frozen {n}" for n in range(1000))

        def create():  # type: ignore[no-untyped-def]
            return client.post(path, json={"name": next(names)}, headers=tenant.auth)

        assert (await create()).status_code == 201
        postgres.freeze()
        try:
            timings = []
            for request in (create(), create(), client.get("/readyz")):
                response, elapsed = await timed(request)
                assert_unavailable(response, elapsed)
                timings.append(elapsed)
        finally:
            postgres.thaw()
        started = time.monotonic()
        while (response := await create()).status_code != 201:
            assert_unavailable(response, 0)
            assert time.monotonic() - started < RECOVERY_WITHIN, "no recovery"
            await asyncio.sleep(0.5)
    print(f"\nfrozen: 503 after {', '.join(f'{t:.2f}' for t in timings)} s (mid-query, connect, readyz)")

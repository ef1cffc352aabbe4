"""Fixtures: a real database (Postgres when TEST_DATABASE_URL is set, else SQLite), the app, and
callers with real hashed keys. Each test makes its own workspace, so tests never share rows."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from odeus_triggers.app import create_app
from odeus_triggers.config import Settings
from odeus_triggers.migrate import upgrade_to_head

from helpers import Tenant, make_tenant

BASES = ["", "/api/public"]
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


async def _admin_execute(url: str, *statements: str) -> None:
    import asyncpg

    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username, password=u.password,
        database=u.database or "postgres", timeout=5,
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh database for this test run, migrated to head."""
    if not TEST_DATABASE_URL:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        asyncio.run(upgrade_to_head(Settings(database_url=url)))
        yield url
        return
    name = f"odeus_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin_execute(TEST_DATABASE_URL, f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # under CI an unreachable Postgres must fail the run, never skip it
        pytest.fail(f"TEST_DATABASE_URL is set but Postgres is unreachable: {type(exc).__name__}: {exc}", pytrace=False)
    url = make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    asyncio.run(upgrade_to_head(Settings(database_url=url)))
    yield url
    asyncio.run(_admin_execute(TEST_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"database_url": database_url, "rate_limit": "100000/minute",
                                 "rate_limit_unauthenticated": "100000/minute"}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[object]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def tenant(app: object) -> Tenant:
    return await make_tenant(app)


@pytest.fixture(params=BASES, ids=["root", "api-public"])
def base(request: pytest.FixtureRequest) -> str:
    return request.param


ROOT = Path(__file__).resolve().parents[1]

"""A read-only database (a standby promoted after a failover, or a primary demoted to one) is an
outage: every write answers 503 with Retry-After, on every write path, never 500.

Postgres only: SQLite has no read-only mode that new connections pick up. It makes a database of
its own, since the read-only switch is per database.
"""

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.engine import make_url

from odeus_triggers.config import Settings
from odeus_triggers.db.migrate import upgrade_to_head
from odeus_triggers.triggers.examples import SEED_TRIGGER

from support.helpers import (
    TEST_ENCRYPTION_KEY,
    Tenant,
    admin_execute,
    assert_problem,
    client_of,
    create_path,
    fresh_postgres_database,
    integration_path,
    make_tenant,
    started_app,
    trigger_path,
)

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL, reason="Postgres only (TEST_DATABASE_URL)")


@pytest.fixture
def read_only_url() -> Iterator[str]:
    with fresh_postgres_database(TEST_DATABASE_URL or "", "odeus_ro") as url:
        yield url


def _settings(url: str) -> Settings:
    return Settings(  # type: ignore[arg-type]
        database_url=url, rate_limit="100000/minute", rate_limit_unauthenticated="100000/minute",
        encryption_keys=TEST_ENCRYPTION_KEY,
    )


async def _seed(settings: Settings) -> tuple[Tenant, str]:
    await upgrade_to_head(settings)
    async with started_app(settings) as app:
        tenant = await make_tenant(app)
        async with client_of(app) as client:
            created = await client.post(create_path("", tenant.integration_id), json=SEED_TRIGGER, headers=tenant.auth)
            assert created.status_code == 201, created.text
    return tenant, created.json()["trigger"]["id"]


@pytest.fixture
async def read_only_app(read_only_url: str) -> AsyncIterator[tuple[object, Tenant, str]]:
    settings = _settings(read_only_url)
    tenant, trigger_id = await _seed(settings)
    name = make_url(read_only_url).database
    await admin_execute(TEST_DATABASE_URL or "", f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    # A fresh app, hence a fresh pool: only new connections see the setting.
    async with started_app(settings) as app:
        yield app, tenant, trigger_id


@pytest.mark.parametrize("base", ["", "/api/public"], ids=["root", "api-public"])
async def test_every_write_is_503_while_the_database_is_read_only(read_only_app, base):
    app, tenant, trigger_id = read_only_app
    renamed = {**SEED_TRIGGER, "name": f"Renamed {uuid.uuid4().hex[:6]}"}
    idempotent = {**tenant.auth, "Idempotency-Key": uuid.uuid4().hex}
    writes = {
        "create integration": ("POST", f"{base}/integrations/v1/create", {"name": "New"}, tenant.auth),
        "create trigger": ("POST", create_path(base, tenant.integration_id), {"name": "New trigger"}, tenant.auth),
        "update trigger": ("PUT", trigger_path(base, tenant.integration_id, trigger_id), renamed, tenant.auth),
        "delete trigger": ("DELETE", trigger_path(base, tenant.integration_id, trigger_id), None, tenant.auth),
        "create trigger, idempotent": (
            "POST", create_path(base, tenant.integration_id), {"name": "Idempotent"}, idempotent,
        ),
        "create integration, idempotent": (
            "POST", f"{base}/integrations/v1/create", {"name": "Idempotent"},
            {**tenant.auth, "Idempotency-Key": uuid.uuid4().hex},
        ),
    }
    async with client_of(app) as client:
        for what, (method, path, body, headers) in writes.items():
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == 503, f"{what}: {response.status_code} {response.text}"
            assert_problem(response, 503, "service_unavailable")
            assert int(response.headers["retry-after"]) > 0, what
        # Reads still work: the database is up, only writes are refused.
        read = await client.get(integration_path(base, tenant.integration_id), headers=tenant.auth)
        assert read.status_code == 200, read.text

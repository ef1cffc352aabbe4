"""`odeus_subscriptions{status}` on the API process's /metrics (RUNTIME.md, Processes > Metrics):
every status always exported, one query per cache interval whatever the scrapes, and a database
outage never makes /metrics fail."""

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event

from odeus_triggers.db.migrate import upgrade_to_head

from support.fresh_app import fresh_app, serving, settings_for
from support.helpers import make_tenant
from support.subscriptions import create_trigger, force_status, subscribe, subscription_path
from support.throwaway_postgres import ThrowawayPostgres, running_cluster

STATUSES = {"active", "paused", "paused_errors", "disabled"}


async def scraped(client: httpx.AsyncClient) -> dict[str, float] | None:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        if family.name == "odeus_subscriptions":
            return {s.labels["status"]: s.value for s in family.samples}
    return None


async def test_every_status_is_counted_and_the_count_is_cached(tmp_path):
    async with fresh_app(tmp_path) as (app, client):
        gauge = app.state.metrics.subscriptions
        assert await scraped(client) == dict.fromkeys(STATUSES, 0)

        tenant = await make_tenant(app)
        trigger_id = await create_trigger(client, tenant)
        ids = [(await subscribe(client, tenant, trigger_id))["subscription"]["id"] for _ in range(5)]
        path = subscription_path("", tenant.integration_id, trigger_id, ids[1])
        assert (await client.patch(path, json={"status": "paused"}, headers=tenant.auth)).status_code == 200
        await force_status(app, ids[2], "paused_errors")
        await force_status(app, ids[3], "disabled")

        gauge.cache_s = 3600.0
        assert await scraped(client) == dict.fromkeys(STATUSES, 0)  # the cached answer
        gauge.cache_s = 0.0
        assert await scraped(client) == {"active": 2, "paused": 1, "paused_errors": 1, "disabled": 1}


async def test_a_scrape_storm_costs_one_query_per_interval(tmp_path):
    async with fresh_app(tmp_path) as (app, client):
        counts: list[str] = []

        def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "GROUP BY subscriptions.status" in statement:
                counts.append(statement)

        event.listen(app.state.engine.sync_engine, "before_cursor_execute", seen)
        app.state.metrics.subscriptions.cache_s = 60.0
        scrapes = await asyncio.gather(*(scraped(client) for _ in range(20)))
        assert all(s == dict.fromkeys(STATUSES, 0) for s in scrapes)
        assert len(counts) == 1


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    with running_cluster() as cluster:
        yield cluster


async def test_a_database_outage_keeps_the_last_counts_and_metrics_answers(postgres):
    settings = settings_for(postgres.url)
    await upgrade_to_head(settings)
    async with serving(settings) as (app, client):
        tenant = await make_tenant(app)
        await subscribe(client, tenant, await create_trigger(client, tenant))
        app.state.metrics.subscriptions.cache_s = 0.0
        assert (await scraped(client) or {})["active"] == 1

        await asyncio.to_thread(postgres.stop, "immediate")
        for _ in range(3):
            started = time.monotonic()
            assert (await scraped(client) or {})["active"] == 1
            assert time.monotonic() - started < 5.0

        await asyncio.to_thread(postgres.start)
        await subscribe(client, tenant, await create_trigger(client, tenant))
        assert (await scraped(client) or {})["active"] == 2

"""Helpers of the multi-process worker tests: the workers' environment, their poll counters, and
what the database holds about one workspace's subscriptions and polls."""

import asyncio
import logging
import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from support.helpers import TEST_ENCRYPTION_KEY, Tenant
from support.subscriptions import subscriptions_path

# A public IP literal: the address guard accepts it without DNS, and nothing here delivers to it.
WEBHOOK = "https://93.184.215.14/h"


def worker_env(database_url: str, **extra: str) -> dict[str, str]:
    """A worker's environment: this process's ODEUS_ settings and Redis do not leak in."""
    import os

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ODEUS_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"DATABASE_URL": database_url, "ODEUS_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
                "ODEUS_MIN_INTERVAL_SECONDS": "1", "ODEUS_LOG_LEVEL": "WARNING", **extra})
    return env


def require_postgres(is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("Postgres only (TEST_DATABASE_URL): worker processes share one Postgres; SQLite has one writer "
                    "and runs the scheduler inside the API")


def polls_total(metrics: str) -> int:
    """The sum of a worker's `odeus_polls_total` over every outcome."""
    return int(sum(float(v) for v in re.findall(r'^odeus_polls_total\{outcome="\w+"\} (\S+)$', metrics, re.MULTILINE)))


async def subscribe_many(client: httpx.AsyncClient, tenant: Tenant, trigger_id: str, count: int,
                         batch: int = 50, **body: Any) -> list[str]:
    """`count` subscriptions created through the API, `batch` requests at a time; their ids."""
    path = subscriptions_path("", tenant.integration_id, trigger_id)
    payload = {"inputs": {}, "webhookUrl": WEBHOOK, "intervalSeconds": 1, **body}

    async def one() -> str:
        response = await client.post(path, json=payload, headers=tenant.auth)
        assert response.status_code == 201, response.text
        return str(response.json()["subscription"]["id"])

    # A thousand access-log lines would bury what the test prints under `-s`.
    access = logging.getLogger("odeus_triggers.access")
    level = access.level
    access.setLevel(logging.WARNING)
    ids: list[str] = []
    try:
        for start in range(0, count, batch):
            ids += await asyncio.gather(*(one() for _ in range(min(batch, count - start))))
    finally:
        access.setLevel(level)
    return ids


async def workspace_runs(engine: Any, workspace_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every poll run of the workspace's subscriptions, by subscription, then start."""
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT r.subscription_id, r.started_at, r.finished_at, r.outcome, r.new FROM poll_runs r "
            "JOIN subscriptions s ON s.id = r.subscription_id WHERE s.workspace_id = :ws "
            "ORDER BY r.subscription_id, r.started_at, r.finished_at"), {"ws": workspace_id})
        return [dict(r) for r in rows.mappings()]


async def subscription_rows(engine: Any, workspace_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    """The scheduling columns of the workspace's subscriptions, by id, with the database's now()."""
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT id, next_poll_at, lease_expires_at, lease_epoch, now() AS db_now FROM subscriptions "
            "WHERE workspace_id = :ws"), {"ws": workspace_id})
        return {str(r["id"]): dict(r) for r in rows.mappings()}


async def events_of(engine: Any, workspace_id: uuid.UUID) -> list[tuple[str, str, str]]:
    """(subscription id, event key, state) of every event of the workspace, sorted."""
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT e.subscription_id, e.event_key, e.state FROM trigger_events e "
            "JOIN subscriptions s ON s.id = e.subscription_id WHERE s.workspace_id = :ws "
            "ORDER BY 1, 2, 3"), {"ws": workspace_id})
        return [(str(s), k, st) for s, k, st in rows]


async def pause_all_but(engine: Any, *workspace_ids: uuid.UUID) -> None:
    """Take every other workspace's subscriptions out of the schedule: a test that counts a worker's
    slots cannot share them with what an earlier test left due in the shared database."""
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE subscriptions SET status = 'paused' WHERE status = 'active' "
                 "AND NOT (workspace_id = ANY(:mine))" if conn.dialect.name == "postgresql" else
                 "UPDATE subscriptions SET status = 'paused' WHERE status = 'active'"),
            {"mine": list(workspace_ids)},
        )


async def pause_workspace(engine: Any, workspace_id: uuid.UUID) -> None:
    """Take the workspace's subscriptions out of the schedule, so that the workers of later tests
    (which share the database) do not spend their time on them."""
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE subscriptions SET status = 'paused' WHERE workspace_id = :ws"),
                           {"ws": workspace_id})

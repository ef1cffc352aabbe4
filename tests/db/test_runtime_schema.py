"""The runtime's tables serve its hot queries: the partial indexes exist as migrated, the dedupe key
is unique, and deletes cascade from a trigger down to its delivery attempts."""

import uuid

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from odeus_triggers.db import runtime_tables  # noqa: F401  (the models compared below)
from odeus_triggers.timestamps import utcnow

from support.helpers import create_path, trigger_path


def _index_definitions(connection, is_postgres: bool, name: str) -> list[str]:
    if is_postgres:
        query = "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
    else:
        query = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name"
    return [row[0] for row in connection.execute(text(query), {"name": name}).all()]


@pytest.mark.parametrize(
    ("index", "column", "predicate"),
    [("ix_subscriptions_due", "next_poll_at", "status"), ("ix_trigger_events_due", "next_attempt_at", "state")],
)
async def test_the_claims_use_partial_indexes(app, is_postgres, index, column, predicate):
    async with app.state.engine.connect() as conn:
        [definition] = await conn.run_sync(_index_definitions, is_postgres, index)
    assert column in definition
    # Only the rows a claim can take are in the index: active subscriptions, pending events.
    assert "WHERE" in definition.upper() and predicate in definition


async def test_every_foreign_key_of_the_runtime_cascades(app):
    def foreign_keys(connection):
        inspector = inspect(connection)
        tables = ("subscriptions", "subscription_secrets", "integration_secrets", "poll_runs", "trigger_events",
                  "delivery_attempts")
        return {t: inspector.get_foreign_keys(t) for t in tables}

    async with app.state.engine.connect() as conn:
        found = await conn.run_sync(foreign_keys)
    for table, fks in found.items():
        assert fks, table
        assert all(fk["options"].get("ondelete") == "CASCADE" for fk in fks), table


async def _subscription_with_an_event(app, client, tenant) -> tuple[str, str, str]:
    trigger = await client.post(create_path("", tenant.integration_id), headers=tenant.auth,
                                json={"name": f"Schema {uuid.uuid4().hex[:8]}", "pollingCode": "return [];"})
    trigger_id = trigger.json()["trigger"]["id"]
    created = await client.post(f"{trigger_path('', tenant.integration_id, trigger_id)}/subscriptions",
                                headers=tenant.auth, json={"inputs": {}, "webhookUrl": "https://93.184.215.14/h"})
    assert created.status_code == 201, created.text
    subscription_id = created.json()["subscription"]["id"]
    event_id = f"msg_{uuid.uuid4().hex}"
    now = utcnow()
    async with app.state.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO trigger_events (id, subscription_id, event_key, state, first_seen_at, last_seen_at, "
                 "attempts, lease_epoch) VALUES (:id, :sid, '1', 'pending', :now, :now, 0, 0)"),
            {"id": event_id, "sid": uuid.UUID(subscription_id).hex if not _pg(conn) else subscription_id, "now": now},
        )
        await conn.execute(
            text("INSERT INTO delivery_attempts (id, event_id, attempted_at, duration_ms) VALUES (:id, :eid, :now, 1)"),
            {"id": uuid.uuid4().hex if not _pg(conn) else str(uuid.uuid4()), "eid": event_id, "now": now},
        )
    return trigger_id, subscription_id, event_id


def _pg(conn) -> bool:
    return conn.dialect.name == "postgresql"


async def test_the_dedupe_key_is_unique_per_subscription(app, client, tenant):
    _, subscription_id, _ = await _subscription_with_an_event(app, client, tenant)
    with pytest.raises(IntegrityError):
        async with app.state.engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO trigger_events (id, subscription_id, event_key, state, first_seen_at, last_seen_at, "
                     "attempts, lease_epoch) VALUES (:id, :sid, '1', 'seeded', :now, :now, 0, 0)"),
                {"id": f"msg_{uuid.uuid4().hex}", "sid": subscription_id if _pg(conn) else uuid.UUID(subscription_id).hex,
                 "now": utcnow()},
            )


async def test_deleting_a_trigger_deletes_its_subscriptions_events_and_attempts(app, client, tenant):
    trigger_id, subscription_id, event_id = await _subscription_with_an_event(app, client, tenant)
    deleted = await client.delete(trigger_path("", tenant.integration_id, trigger_id), headers=tenant.auth)
    assert deleted.status_code == 200
    async with app.state.engine.connect() as conn:
        left = [
            await conn.scalar(text(f"SELECT count(*) FROM {table} WHERE {column} = :v"), {"v": value})
            for table, column, value in (
                ("subscriptions", "id", subscription_id if _pg(conn) else uuid.UUID(subscription_id).hex),
                ("trigger_events", "id", event_id),
                ("delivery_attempts", "event_id", event_id),
            )
        ]
    assert left == [0, 0, 0]

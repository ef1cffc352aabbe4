"""Create Subscription on Postgres: one round trip when warm, and a cached trigger never validates
against fields the trigger no longer has.

Round trips are counted on the driver's wire protocol (each of these calls sends a Sync and waits
for the answer), so the raw one-statement path and SQLAlchemy's statements are counted alike.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, text

from odeus_triggers.subscriptions import service
from odeus_triggers.subscriptions.schemas import SubscriptionCreate

from support.helpers import assert_problem, trigger_path
from support.subscriptions import (
    INPUTS,
    TRIGGER,
    create_body,
    create_trigger,
    stored_row,
    stored_secret_rows,
    subscriptions_path,
)

_ROUND_TRIPS = ("prepare", "bind_execute", "bind_execute_many", "bind", "execute", "query", "close_statement",
                "copy_in", "copy_out")


class _CountingProtocol:
    """Stands in for an asyncpg connection's protocol and counts the calls that talk to the server."""

    def __init__(self, inner: Any, counts: list[str]) -> None:
        self._inner = inner
        self._counts = counts

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in _ROUND_TRIPS:
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._counts.append(name)
            return attr(*args, **kwargs)

        return counted


@contextmanager
def round_trips(app: Any) -> Iterator[list[str]]:
    """The round trips to Postgres of every pooled connection checked out inside the block."""
    counts: list[str] = []
    wrapped: list[tuple[Any, Any]] = []

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if not isinstance(driver._protocol, _CountingProtocol):
            wrapped.append((driver, driver._protocol))
            driver._protocol = _CountingProtocol(driver._protocol, counts)

    sync_engine = app.state.engine.sync_engine
    event.listen(sync_engine, "checkout", on_checkout)
    try:
        yield counts
    finally:
        event.remove(sync_engine, "checkout", on_checkout)
        for driver, protocol in wrapped:
            driver._protocol = protocol


@pytest.fixture(autouse=True)
def _postgres_only(is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("the one-round-trip create is Postgres's; SQLite keeps the transaction")


async def _post(client: Any, tenant: Any, trigger_id: str, **changes: Any) -> Any:
    return await client.post(
        subscriptions_path("", tenant.integration_id, trigger_id), json=create_body(**changes), headers=tenant.auth
    )


async def _warm_every_pooled_connection(app: Any, client: Any, tenant: Any, trigger_id: str) -> None:
    # The pool hands out its connections in turn, and each prepares the statement once: after a
    # create on each of them, every next create finds it prepared.
    for _ in range(app.state.settings.db_pool_size + 1):
        response = await _post(client, tenant, trigger_id)
        assert response.status_code == 201, response.text


async def test_a_warm_create_costs_one_round_trip_in_the_service(app, client, tenant):
    trigger_id = await create_trigger(client, tenant)
    await _warm_every_pooled_connection(app, client, tenant, trigger_id)
    body = SubscriptionCreate.model_validate(create_body(secrets={"API_TOKEN": "t-1", "OTHER": "t-2"}))
    rules = service.Rules(min_interval_s=1, allow_private_network=False)

    with round_trips(app) as counts:
        created = await service.create_subscription(
            app.state.engine, app.state.keyring, rules, tenant.workspace_id,
            uuid.UUID(tenant.integration_id), uuid.UUID(trigger_id), body,
        )
    assert counts == ["bind_execute"], counts  # the old path: BEGIN, SELECT, ROLLBACK, BEGIN, 2 INSERTs, COMMIT

    sub = created["subscription"]
    assert [s["name"] for s in sub["secrets"]] == ["API_TOKEN", "OTHER"]
    assert {r["name"] for r in await stored_secret_rows(app, sub["id"])} == {"API_TOKEN", "OTHER"}
    row = await stored_row(app, sub["id"])
    assert row is not None and row["inputs"] == INPUTS and row["status"] == "active"


async def test_a_warm_create_request_costs_one_round_trip(app, client, tenant):
    trigger_id = await create_trigger(client, tenant)
    await _warm_every_pooled_connection(app, client, tenant, trigger_id)

    with round_trips(app) as counts:
        response = await _post(client, tenant, trigger_id, secrets={"API_TOKEN": "t-1"})
    assert response.status_code == 201, response.text
    assert counts == ["bind_execute"], counts


async def test_the_one_statement_stores_what_the_transaction_stores(app, client, tenant):
    trigger_id = await create_trigger(client, tenant)
    cold = (await _post(client, tenant, trigger_id, secrets={"A": "x"}, intervalSeconds=120)).json()
    warm = (await _post(client, tenant, trigger_id, secrets={"A": "x"}, intervalSeconds=120)).json()
    rows = [await stored_row(app, b["subscription"]["id"]) for b in (cold, warm)]
    differing = {"id", "signing_secret", "next_poll_at", "created_at", "updated_at"}
    assert rows[0] is not None and rows[1] is not None
    assert {k: v for k, v in rows[0].items() if k not in differing} == {
        k: v for k, v in rows[1].items() if k not in differing
    }
    async with app.state.engine.connect() as conn:
        nulls = (await conn.execute(text(
            "SELECT last_error IS NULL FROM subscriptions WHERE trigger_id = :t"
        ), {"t": uuid.UUID(trigger_id)})).scalars().all()
    assert len(nulls) == 2 and nulls[0] == nulls[1]  # the same kind of null from both paths


async def test_a_changed_trigger_is_read_again_before_validating(app, client, tenant):
    trigger_id = await create_trigger(client, tenant)
    assert (await _post(client, tenant, trigger_id)).status_code == 201  # cached now
    changed = {**TRIGGER, "name": f"Changed {uuid.uuid4().hex[:8]}", "inputFields": [
        *TRIGGER["inputFields"], {"label": "Region", "type": "TEXT", "required": True},
    ]}
    put = await client.put(trigger_path("", tenant.integration_id, trigger_id), json=changed, headers=tenant.auth)
    assert put.status_code == 200, put.text

    # The cached copy would accept these inputs; the trigger now requires `region`.
    missing = await _post(client, tenant, trigger_id)
    body = assert_problem(missing, 400, "validation_error")
    assert "inputs.region" in [e["field"] for e in body["errors"]]
    ok = await _post(client, tenant, trigger_id, inputs={**INPUTS, "region": "eu"})
    assert ok.status_code == 201, ok.text


async def test_a_field_removed_since_caching_is_not_required_any_more(app, client, tenant):
    required = {**TRIGGER, "inputFields": [*TRIGGER["inputFields"], {"label": "Region", "type": "TEXT", "required": True}]}
    trigger_id = await create_trigger(client, tenant, required)
    assert (await _post(client, tenant, trigger_id, inputs={**INPUTS, "region": "eu"})).status_code == 201
    put = await client.put(trigger_path("", tenant.integration_id, trigger_id),
                           json={**TRIGGER, "name": f"Plain {uuid.uuid4().hex[:8]}"}, headers=tenant.auth)
    assert put.status_code == 200, put.text

    # The cached copy still requires `region`: its 400 must not be the answer.
    response = await _post(client, tenant, trigger_id)
    assert response.status_code == 201, response.text


async def test_a_trigger_deleted_since_caching_is_not_found(app, client, tenant):
    trigger_id = await create_trigger(client, tenant)
    assert (await _post(client, tenant, trigger_id)).status_code == 201
    deleted = await client.delete(trigger_path("", tenant.integration_id, trigger_id), headers=tenant.auth)
    assert deleted.status_code == 200, deleted.text

    assert_problem(await _post(client, tenant, trigger_id), 404, "trigger_not_found")

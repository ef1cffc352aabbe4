"""Rotating a subscription's signing secret (RUNTIME.md, "Delivery"), and who may use the event and
rotation routes."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from odeus_triggers.auth.scopes import Scope
from odeus_triggers.db.runtime_tables import Subscription
from odeus_triggers.subscriptions.seal_contexts import signing_context
from odeus_triggers.timestamps import as_utc

from support.events import delivering_subscription, event_by_key, event_row
from support.helpers import assert_problem, key_for, make_tenant
from support.polls import Polled
from support.subscriptions import create_trigger, stored_row, subscribe, subscription_path


async def _secrets(app, sub_id: str) -> tuple[str, str | None, datetime | None]:
    """The subscription's signing secrets, opened, and when the previous one stops signing."""
    table = Subscription.__table__
    async with app.state.engine.connect() as conn:
        row = (await conn.execute(select(table).where(table.c.id == uuid.UUID(sub_id)))).one()
    keyring, context = app.state.keyring, signing_context(uuid.UUID(sub_id))
    previous = keyring.open(row.previous_signing_secret, context) if row.previous_signing_secret else None
    until = row.previous_signing_secret_until
    return keyring.open(row.signing_secret, context), previous, as_utc(until) if until else None


async def test_rotation_keeps_the_replaced_secret_for_24_hours(app, client, tenant, base):
    trigger_id = await create_trigger(client, tenant)
    created = await subscribe(client, tenant, trigger_id)
    original, sub_id = created["signingSecret"], created["subscription"]["id"]
    path = subscription_path(base, tenant.integration_id, trigger_id, sub_id)
    response = await client.post(path + "/rotate-signing-secret", headers=tenant.auth)
    assert response.status_code == 200, response.text
    rotated = response.json()["signingSecret"]
    assert response.json() == {"signingSecret": rotated}
    assert rotated.startswith("whsec_") and rotated != original
    assert response.text.count(rotated) == 1
    current, previous, until = await _secrets(app, sub_id)
    assert (current, previous) == (rotated, original)
    assert until is not None and abs(until - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)

    read = await client.get(path, headers=tenant.auth)
    assert read.status_code == 200 and rotated not in read.text and original not in read.text
    assert read.json()["subscription"]["updatedAt"] >= created["subscription"]["updatedAt"]


async def test_two_rotations_leave_only_the_newest_two_secrets(app, client, tenant):
    trigger_id = await create_trigger(client, tenant)
    created = await subscribe(client, tenant, trigger_id)
    path = subscription_path("", tenant.integration_id, trigger_id, created["subscription"]["id"])
    first = (await client.post(path + "/rotate-signing-secret", headers=tenant.auth)).json()["signingSecret"]
    second = (await client.post(path + "/rotate-signing-secret", headers=tenant.auth)).json()["signingSecret"]
    current, previous, _ = await _secrets(app, created["subscription"]["id"])
    assert (current, previous) == (second, first)
    assert created["signingSecret"] not in (current, previous)


async def test_a_rotation_retried_with_its_idempotency_key_rotates_once(app, client, tenant):
    trigger_id = await create_trigger(client, tenant)
    created = await subscribe(client, tenant, trigger_id)
    path = subscription_path("", tenant.integration_id, trigger_id, created["subscription"]["id"])
    headers = {**tenant.auth, "Idempotency-Key": f"rotate-{created['subscription']['id']}"}
    first = await client.post(path + "/rotate-signing-secret", headers=headers)
    again = await client.post("/api/public" + path + "/rotate-signing-secret", headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    current, previous, _ = await _secrets(app, created["subscription"]["id"])
    assert (current, previous) == (first.json()["signingSecret"], created["signingSecret"])


def _routes(sub: Polled, base: str, event_id: str) -> list[tuple[str, str]]:
    path = sub.path.replace("/integrations/", f"{base}/integrations/", 1)
    return [("GET", path + "/events"), ("GET", f"{path}/events/{event_id}"),
            ("POST", f"{path}/events/{event_id}/redeliver"), ("POST", path + "/rotate-signing-secret")]


async def test_another_workspace_a_missing_key_or_scope_changes_nothing(app, client, tenant, base):
    sub = await delivering_subscription(client, app, tenant, count=1)
    event_id = (await event_by_key(sub, "item-1"))["id"]
    before = (await stored_row(app, sub.id), await event_row(app, event_id))
    stranger = await make_tenant(app)
    assistant = await key_for(app, tenant, [Scope.ASSISTANT_API])
    for method, path in _routes(sub, base, event_id):
        assert_problem(await client.request(method, path, headers=stranger.auth), 403, "integration_forbidden")
        assert_problem(await client.request(method, path, headers=assistant), 403, "insufficient_scope")
        assert_problem(await client.request(method, path), 401, "unauthorized")
    assert (await stored_row(app, sub.id), await event_row(app, event_id)) == before


async def test_the_subscription_must_be_of_the_trigger_in_the_path(app, client, tenant, base):
    sub = await delivering_subscription(client, app, tenant, count=1)
    event_id = (await event_by_key(sub, "item-1"))["id"]
    other_trigger = await create_trigger(client, tenant)
    before = (await stored_row(app, sub.id), await event_row(app, event_id))
    wrong = Polled(client, app, tenant, other_trigger, {"id": sub.id})
    for method, path in _routes(wrong, base, event_id):
        assert_problem(await client.request(method, path, headers=tenant.auth), 404, "subscription_not_found")
    assert (await stored_row(app, sub.id), await event_row(app, event_id)) == before

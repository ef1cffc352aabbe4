"""POST …/triggers/{triggerId}/subscriptions: the 201, its defaults, idempotency, and what is stored."""

import base64
import json
import re
import uuid
from datetime import datetime

from sqlalchemy import text

from support.helpers import assert_problem, client_of, error_fields, make_tenant, started_app
from support.subscriptions import (
    INPUTS,
    PASSWORD_VALUE,
    WEBHOOK,
    create_body,
    create_trigger,
    fetched,
    listed,
    stored_row,
    stored_secret_rows,
    subscribe,
    subscriptions_path,
)

SUBSCRIPTION_KEYS = {
    "id", "integrationId", "triggerId", "status", "inputs", "secrets", "webhookUrl", "intervalSeconds",
    "lastPollTime", "nextPollAt", "lastPolledAt", "lastSucceededAt", "consecutiveFailures", "lastError",
    "pausedReason", "createdAt", "updatedAt",
}
SECRET_VALUE = "tok-secret-value-93a1c5"


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_create_answers_the_contracts_subscription_and_a_signing_secret(client, tenant, base):
    trigger_id = await create_trigger(client, tenant)
    response = await client.post(
        subscriptions_path(base, tenant.integration_id, trigger_id),
        json=create_body(inputs={**INPUTS, "apiKey": PASSWORD_VALUE}, secrets={"API_TOKEN": SECRET_VALUE}),
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"subscription", "signingSecret"}
    sub = body["subscription"]
    assert set(sub) == SUBSCRIPTION_KEYS
    assert (sub["integrationId"], sub["triggerId"]) == (tenant.integration_id, trigger_id)
    assert sub["status"] == "active"
    assert sub["inputs"] == {**INPUTS, "apiKey": {"set": True}}
    assert [s["name"] for s in sub["secrets"]] == ["API_TOKEN"]
    assert set(sub["secrets"][0]) == {"name", "updatedAt"}
    _iso(sub["secrets"][0]["updatedAt"])
    assert sub["webhookUrl"] == WEBHOOK
    assert sub["intervalSeconds"] == 300
    assert sub["nextPollAt"] is not None and _iso(sub["nextPollAt"])
    assert (sub["lastPollTime"], sub["lastPolledAt"], sub["lastSucceededAt"]) == (None, None, None)
    assert (sub["consecutiveFailures"], sub["lastError"], sub["pausedReason"]) == (0, None, None)
    assert _iso(sub["createdAt"]) == _iso(sub["updatedAt"])

    secret = body["signingSecret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32

    one = await client.get(f"{subscriptions_path(base, tenant.integration_id, trigger_id)}/{sub['id']}", headers=tenant.auth)
    assert one.status_code == 200, one.text
    assert one.json() == {"subscription": sub}
    many = await client.get(subscriptions_path(base, tenant.integration_id, trigger_id), headers=tenant.auth)
    assert many.json() == {"subscriptions": [sub], "nextCursor": None}
    for body in (one.text, many.text):
        assert secret not in body and secret.removeprefix("whsec_") not in body
        assert PASSWORD_VALUE not in body and SECRET_VALUE not in body


async def test_each_subscription_gets_its_own_signing_secret(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    first = await subscribe(client, tenant, trigger_id)
    second = await subscribe(client, tenant, trigger_id)
    assert first["signingSecret"] != second["signingSecret"]
    assert first["subscription"]["id"] != second["subscription"]["id"]


async def test_inputs_may_be_empty_when_no_field_is_required(client, tenant):
    trigger_id = await create_trigger(client, tenant, {"name": "No inputs", "pollingCode": "return [];"})
    sub = (await subscribe(client, tenant, trigger_id, inputs={}))["subscription"]
    assert (sub["inputs"], sub["secrets"]) == ({}, [])


async def test_interval_and_backfill_are_taken(client, tenant, base):
    trigger_id = await create_trigger(client, tenant)
    created = await subscribe(
        client, tenant, trigger_id, base, intervalSeconds=1, backfillSince="2024-05-01T10:00:00Z"
    )
    assert created["subscription"]["intervalSeconds"] == 1
    high = await subscribe(client, tenant, trigger_id, base, intervalSeconds=86_400, backfillSince="2024-05-01T10:00:00.5+02:00")
    assert high["subscription"]["intervalSeconds"] == 86_400
    # backfillSince is not a field of the Subscription: it only decides what the first poll sees.
    assert "backfillSince" not in created["subscription"]


async def test_a_bad_backfill_since_is_400_and_nothing_is_written(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    for bad in ("yesterday", "2024-13-01T00:00:00Z", ""):
        response = await client.post(
            subscriptions_path("", tenant.integration_id, trigger_id), json=create_body(backfillSince=bad),
            headers=tenant.auth,
        )
        assert_problem(response, 400, "validation_error")
        assert error_fields(response) == ["backfillSince"]
    assert await listed(client, tenant, trigger_id) == []


async def test_an_idempotency_key_replays_the_same_201_and_creates_one(client, tenant, base):
    trigger_id = await create_trigger(client, tenant)
    path = subscriptions_path(base, tenant.integration_id, trigger_id)
    headers = {**tenant.auth, "Idempotency-Key": "sub-create-1"}
    first = await client.post(path, json=create_body(), headers=headers)
    assert first.status_code == 201, first.text
    replay = await client.post(path, json=create_body(), headers=headers)
    assert replay.status_code == 201, replay.text
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert [s["id"] for s in await listed(client, tenant, trigger_id)] == [first.json()["subscription"]["id"]]


async def test_the_stored_answer_of_an_idempotent_create_hides_its_signing_secret(app, client, tenant):
    trigger_id = await create_trigger(client, tenant)
    key = f"sub-sealed-{uuid.uuid4().hex}"
    first = await client.post(subscriptions_path("", tenant.integration_id, trigger_id), json=create_body(),
                              headers={**tenant.auth, "Idempotency-Key": key})
    assert first.status_code == 201, first.text
    async with app.state.engine.connect() as conn:
        stored = await conn.scalar(text("SELECT response_body FROM idempotency_records WHERE key = :k"), {"k": key})
    signing = first.json()["signingSecret"]
    assert stored and first.json()["subscription"]["id"] not in stored, "the answer is stored as it is"
    assert signing.removeprefix("whsec_") not in stored, "the signing secret is stored in plain text"


async def test_secrets_are_never_stored_in_plain_text(app, client, tenant):
    trigger_id = await create_trigger(client, tenant)
    created = await subscribe(
        client, tenant, trigger_id, inputs={**INPUTS, "apiKey": PASSWORD_VALUE},
        secrets={"API_TOKEN": SECRET_VALUE, "OTHER": "other-secret-77d2"},
    )
    signing = created["signingSecret"]
    row = await stored_row(app, created["subscription"]["id"])
    secret_rows = await stored_secret_rows(app, created["subscription"]["id"])
    assert row is not None and len(secret_rows) == 2
    dumped = json.dumps([row, secret_rows], default=str)
    for plain in (PASSWORD_VALUE, SECRET_VALUE, "other-secret-77d2", signing, signing.removeprefix("whsec_")):
        assert plain not in dumped
    assert "proj_123" in dumped  # plain inputs are stored as they are: the check above looks in the right place
    sealed = row["sealed_inputs"]
    sealed = json.loads(sealed) if isinstance(sealed, str) else sealed
    assert set(sealed) == {"apiKey"} and re.fullmatch(r"gAAAA[\w=-]+", sealed["apiKey"])


async def test_a_private_webhook_is_accepted_when_the_operator_allows_it(client, tenant, settings):
    trigger_id = await create_trigger(client, tenant)
    refused = await client.post(
        subscriptions_path("", tenant.integration_id, trigger_id),
        json=create_body(webhookUrl="http://127.0.0.1:9/x"), headers=tenant.auth,
    )
    assert_problem(refused, 400, "validation_error")
    assert error_fields(refused) == ["webhookUrl"]
    async with started_app(settings, delivery_allow_private_network=True) as private_app:
        own = await make_tenant(private_app)
        async with client_of(private_app) as private_client:
            own_trigger = await create_trigger(private_client, own)
            sub = (await subscribe(private_client, own, own_trigger, webhookUrl="http://127.0.0.1:9/x"))["subscription"]
            assert sub["webhookUrl"] == "http://127.0.0.1:9/x"
            assert (await fetched(private_client, own, own_trigger, sub["id"]))["webhookUrl"] == "http://127.0.0.1:9/x"
            moved = await private_client.patch(
                f"{subscriptions_path('', own.integration_id, own_trigger)}/{sub['id']}",
                json={"webhookUrl": "http://10.0.0.1/hooks"}, headers=own.auth,
            )
            assert moved.status_code == 200, moved.text
            assert moved.json()["subscription"]["webhookUrl"] == "http://10.0.0.1/hooks"

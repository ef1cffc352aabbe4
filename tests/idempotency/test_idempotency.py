"""Idempotency-Key on the POST create routes: replay, reuse, in flight, scoping, expiry, races."""

import asyncio
import json
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from odeus_triggers.auth import keys
from odeus_triggers.auth.scopes import Scope
from odeus_triggers.db.tables import ApiKey, IdempotencyRecord
from odeus_triggers.idempotency.service import Claim, IdempotencyStore, fingerprint
from odeus_triggers.timestamps import utcnow
from odeus_triggers.triggers import service as trigger_service

from support.helpers import assert_problem, create_path, integration_path, key_for, make_tenant, trigger_path

KEY = "Idempotency-Key"


def idem(tenant, key, auth=None):
    return {**(tenant.auth if auth is None else auth), KEY: key}


async def post(client, tenant, body, key, base="", auth=None):
    return await client.post(create_path(base, tenant.integration_id), json=body, headers=idem(tenant, key, auth))


async def trigger_names(client, tenant):
    response = await client.get(integration_path("", tenant.integration_id), headers=tenant.auth)
    return [t["name"] for t in response.json()["integration"]["triggers"]]


async def key_id_of(app, key):
    async with app.state.engine.connect() as conn:
        return await conn.scalar(select(ApiKey.id).where(ApiKey.digest == keys.digest(key)))


def assert_replay_of(replay, first):
    assert replay.status_code == first.status_code
    assert replay.content == first.content
    assert replay.headers["content-type"] == first.headers["content-type"]
    assert replay.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers


async def test_a_retry_replays_the_first_response_and_creates_nothing(client, tenant, base):
    key = str(uuid.uuid4())
    first = await post(client, tenant, {"name": "Once"}, key, base)
    assert first.status_code == 201, first.text
    replay = await post(client, tenant, {"name": "Once"}, key, base)
    assert_replay_of(replay, first)
    assert await trigger_names(client, tenant) == ["Once"]


async def test_a_retry_at_the_other_base_is_the_same_request(client, tenant):
    first = await post(client, tenant, {"name": "Either base"}, "k-bases", "")
    replay = await post(client, tenant, {"name": "Either base"}, "k-bases", "/api/public")
    assert_replay_of(replay, first)


async def test_the_body_is_compared_as_canonical_json(client, tenant):
    headers = {**idem(tenant, "k-canon"), "Content-Type": "application/json"}
    path = create_path("", tenant.integration_id)
    first = await client.post(path, content=b'{"name":"Canon","description":"d"}', headers=headers)
    replay = await client.post(path, content=b'{ "description" : "d",\n  "name": "Canon" }', headers=headers)
    assert_replay_of(replay, first)


async def test_the_same_key_with_a_different_body_is_422(client, tenant, base):
    assert (await post(client, tenant, {"name": "First"}, "k-reuse", base)).status_code == 201
    response = await post(client, tenant, {"name": "Second"}, "k-reuse", base)
    assert_problem(response, 422, "idempotency_key_reused")
    assert await trigger_names(client, tenant) == ["First"]


async def test_the_same_key_for_another_path_is_422(app, client, tenant):
    assert (await post(client, tenant, {"name": "Here"}, "k-path")).status_code == 201
    response = await client.post("/integrations/v1/create", json={"name": "Here"}, headers=idem(tenant, "k-path"))
    assert_problem(response, 422, "idempotency_key_reused")


@pytest.mark.parametrize(
    "key",
    ["", "x" * 256, "é".encode(), "tab\there", "del\x7f", "nul\x00"],
    ids=["empty", "too-long", "non-ascii", "tab", "del", "nul"],
)
async def test_an_invalid_key_is_400(client, tenant, base, key):
    response = await post(client, tenant, {"name": "Bad key"}, key, base)
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"] == [{"field": KEY, "message": "must be 1 to 255 printable ASCII characters"}]
    assert await trigger_names(client, tenant) == []


async def test_a_repeated_key_header_is_400(client, tenant):
    headers = [*tenant.auth.items(), (KEY, "a"), (KEY, "b")]
    response = await client.post(create_path("", tenant.integration_id), json={"name": "Twice"}, headers=headers)
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"][0]["field"] == KEY


async def test_every_printable_ascii_character_and_255_of_them_are_accepted(client, tenant):
    printable = "".join(chr(c) for c in range(0x20, 0x7F))
    key = (printable * 3)[:255]
    first = await post(client, tenant, {"name": "Long key"}, key)
    assert first.status_code == 201, first.text
    assert_replay_of(await post(client, tenant, {"name": "Long key"}, key), first)


async def test_a_client_error_is_recorded_and_replayed(client, tenant, base):
    taken = await client.post(create_path(base, tenant.integration_id), json={"name": "Taken"}, headers=tenant.auth)
    first = await post(client, tenant, {"name": "Taken"}, "k-409", base)
    assert_problem(first, 409, "trigger_name_conflict")
    # Even once the conflict is gone, the key keeps its first outcome.
    await client.delete(trigger_path(base, tenant.integration_id, taken.json()["trigger"]["id"]), headers=tenant.auth)
    replay = await post(client, tenant, {"name": "Taken"}, "k-409", base)
    assert_replay_of(replay, first)
    assert replay.json()["requestId"] == first.json()["requestId"]
    assert await trigger_names(client, tenant) == []


async def test_a_404_is_recorded_and_replayed(client, tenant):
    path = create_path("", str(uuid.uuid4()))
    first = await client.post(path, json={"name": "Nowhere"}, headers=idem(tenant, "k-404"))
    assert_problem(first, 404, "integration_not_found")
    assert_replay_of(await client.post(path, json={"name": "Nowhere"}, headers=idem(tenant, "k-404")), first)


async def test_a_validation_error_is_not_recorded(client, tenant):
    # Nothing ran (Stripe's rule), so the client may fix the body and retry with the same key.
    assert_problem(await post(client, tenant, {"name": ""}, "k-400"), 400, "validation_error")
    response = await post(client, tenant, {"name": "Fixed"}, "k-400")
    assert response.status_code == 201, response.text
    assert "idempotent-replayed" not in response.headers


async def test_keys_are_scoped_to_the_api_key(app, client, tenant):
    other_key = await key_for(app, tenant, [Scope.INTEGRATION_API])
    mine = await post(client, tenant, {"name": "Mine"}, "shared-key")
    theirs = await post(client, tenant, {"name": "Theirs"}, "shared-key", auth=other_key)
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert_replay_of(await post(client, tenant, {"name": "Theirs"}, "shared-key", auth=other_key), theirs)
    assert sorted(await trigger_names(client, tenant)) == ["Mine", "Theirs"]


async def test_authentication_and_scope_come_before_the_key(app, client, tenant):
    assistant = await key_for(app, tenant, [Scope.ASSISTANT_API])
    assert_problem(await post(client, tenant, {"name": "X"}, "", auth={}), 401, "unauthorized")
    assert_problem(await post(client, tenant, {"name": "X"}, "", auth=assistant), 403, "insufficient_scope")


async def test_a_request_in_flight_gets_409_then_its_replay(client, tenant, monkeypatch):
    started, release = asyncio.Event(), asyncio.Event()
    real = trigger_service.create_trigger

    async def slow_create(*args):
        started.set()
        await release.wait()
        return await real(*args)

    monkeypatch.setattr(trigger_service, "create_trigger", slow_create)
    first = asyncio.create_task(post(client, tenant, {"name": "Slow"}, "k-flight"))
    await asyncio.wait_for(started.wait(), 5)
    busy = await post(client, tenant, {"name": "Slow"}, "k-flight")
    assert_problem(busy, 409, "idempotency_key_in_use")
    assert busy.headers["retry-after"] == "1"
    release.set()
    first = await first
    assert first.status_code == 201
    assert_replay_of(await post(client, tenant, {"name": "Slow"}, "k-flight"), first)


async def test_a_server_error_frees_the_key_for_a_retry(app, tenant, monkeypatch):
    async def broken(*args):
        raise RuntimeError("boom")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        monkeypatch.setattr(trigger_service, "create_trigger", broken)
        failed = await post(client, tenant, {"name": "Retry me"}, "k-500")
        assert (failed.status_code, failed.json()["code"]) == (500, "internal_error")
        monkeypatch.undo()
        response = await post(client, tenant, {"name": "Retry me"}, "k-500")
        assert response.status_code == 201, response.text
        assert "idempotent-replayed" not in response.headers


async def test_an_abandoned_claim_is_taken_over(app, client, tenant):
    body = {"name": "Orphan"}
    path = f"/integrations/v1/{tenant.integration_id}/triggers/create"
    store = app.state.idempotency
    claim = await store.claim(await key_id_of(app, tenant.key), "k-orphan", fingerprint("POST", path, json.dumps(body).encode()))
    assert isinstance(claim, Claim)
    assert_problem(await post(client, tenant, body, "k-orphan"), 409, "idempotency_key_in_use")

    async with app.state.engine.begin() as conn:  # as if its process died a minute ago
        await conn.execute(
            update(IdempotencyRecord).where(IdempotencyRecord.id == claim.id)
            .values(created_at=utcnow() - store.abandoned_after - timedelta(seconds=1))
        )
    response = await post(client, tenant, body, "k-orphan")
    assert response.status_code == 201, response.text
    # The dead claimant's late answer must not overwrite the new owner's record.
    await store.complete(claim, 500, "late")
    assert_replay_of(await post(client, tenant, body, "k-orphan"), response)


async def test_an_expired_record_is_ignored_and_purged(app, client, tenant):
    first = await post(client, tenant, {"name": "Old"}, "k-expired")
    async with app.state.engine.begin() as conn:
        await conn.execute(
            update(IdempotencyRecord).where(IdempotencyRecord.key == "k-expired")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = await post(client, tenant, {"name": "New"}, "k-expired")
    assert (first.status_code, response.status_code) == (201, 201)
    assert "idempotent-replayed" not in response.headers

    other = await make_tenant(app)
    await post(client, other, {"name": "Gone"}, "k-purge")
    async with app.state.engine.begin() as conn:
        await conn.execute(
            update(IdempotencyRecord).where(IdempotencyRecord.key == "k-purge")
            .values(expires_at=utcnow() - timedelta(hours=1))
        )
    assert await IdempotencyStore(app.state.engine, app.state.keyring).purge_expired() >= 1
    async with app.state.engine.connect() as conn:
        keys_left = (
            await conn.scalars(select(IdempotencyRecord.key).where(IdempotencyRecord.key.in_(["k-purge", "k-expired"])))
        ).all()
    assert keys_left == ["k-expired"]


async def test_ten_concurrent_requests_with_one_key_create_one_trigger(client, tenant, base):
    body = {"name": "Raced", "inputFields": [{"label": "Project ID"}]}
    responses = await asyncio.gather(*(post(client, tenant, body, "k-race", base) for _ in range(10)))
    originals = [r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    assert len(originals) == 1, [(r.status_code, r.text) for r in responses]
    for r in responses:
        if r is originals[0]:
            continue
        if r.status_code == 409:
            assert_problem(r, 409, "idempotency_key_in_use")
        else:
            assert_replay_of(r, originals[0])
    assert await trigger_names(client, tenant) == ["Raced"]


async def test_create_integration_is_idempotent_too(client, tenant, base):
    headers = idem(tenant, "k-integration")
    first = await client.post(f"{base}/integrations/v1/create", json={"name": "Idem"}, headers=headers)
    assert first.status_code == 201, first.text
    assert_replay_of(await client.post(f"{base}/integrations/v1/create", json={"name": "Idem"}, headers=headers), first)
    different = await client.post(f"{base}/integrations/v1/create", json={"name": "Other"}, headers=headers)
    assert_problem(different, 422, "idempotency_key_reused")
    listed = await client.get(f"{base}/integrations/v1/get", headers=tenant.auth)
    assert [i["name"] for i in listed.json()["integrations"]] == ["Tracker", "Idem"]


async def test_both_create_routes_document_the_header_and_its_errors(app):
    paths = app.openapi()["paths"]
    for path in ("/integrations/v1/create", "/integrations/v1/{integrationId}/triggers/create"):
        operation = paths[path]["post"]
        assert KEY in [p["name"] for p in operation["parameters"] if p["in"] == "header"]
        assert "idempotency_key_in_use" in operation["responses"]["409"]["description"]
        assert "idempotency_key_reused" in operation["responses"]["422"]["description"]
        assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"]

"""GET of one subscription and of a trigger's list: 404s, malformed ids, and cursor pagination."""

import base64
import json
import uuid

import pytest

from support.helpers import assert_problem, error_fields, make_tenant
from support.subscriptions import create_trigger, subscribe, subscription_path, subscriptions_path


async def test_an_unknown_subscription_is_404(client, tenant, base):
    trigger_id = await create_trigger(client, tenant)
    path = subscription_path(base, tenant.integration_id, trigger_id, str(uuid.uuid4()))
    assert_problem(await client.get(path, headers=tenant.auth), 404, "subscription_not_found")
    assert_problem(await client.patch(path, json={"status": "paused"}, headers=tenant.auth), 404, "subscription_not_found")
    assert_problem(await client.delete(path, headers=tenant.auth), 404, "subscription_not_found")


async def test_a_subscription_is_found_only_under_its_own_trigger(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    other_trigger = await create_trigger(client, tenant)
    sub = (await subscribe(client, tenant, trigger_id))["subscription"]
    path = subscription_path("", tenant.integration_id, other_trigger, sub["id"])
    assert_problem(await client.get(path, headers=tenant.auth), 404, "subscription_not_found")
    assert_problem(await client.delete(path, headers=tenant.auth), 404, "subscription_not_found")


async def test_an_unknown_trigger_is_404(client, tenant, base):
    path = subscriptions_path(base, tenant.integration_id, str(uuid.uuid4()))
    assert_problem(await client.get(path, headers=tenant.auth), 404, "trigger_not_found")
    response = await client.post(path, json={"inputs": {}, "webhookUrl": "https://93.184.215.14/x"}, headers=tenant.auth)
    assert_problem(response, 404, "trigger_not_found")


async def test_a_trigger_without_subscriptions_lists_none(client, tenant, base):
    trigger_id = await create_trigger(client, tenant)
    response = await client.get(subscriptions_path(base, tenant.integration_id, trigger_id), headers=tenant.auth)
    assert response.status_code == 200, response.text
    assert response.json() == {"subscriptions": [], "nextCursor": None}


@pytest.mark.parametrize("field", ["subscriptionId", "triggerId", "integrationId"])
async def test_malformed_ids_are_400(client, tenant, field):
    trigger_id = await create_trigger(client, tenant)
    ids = {"integrationId": tenant.integration_id, "triggerId": trigger_id, "subscriptionId": str(uuid.uuid4())}
    ids[field] = "not-a-uuid"
    path = subscription_path("", ids["integrationId"], ids["triggerId"], ids["subscriptionId"])
    for response in (
        await client.get(path, headers=tenant.auth),
        await client.patch(path, json={}, headers=tenant.auth),
        await client.delete(path, headers=tenant.auth),
    ):
        assert_problem(response, 400, "validation_error")
        assert field in error_fields(response)


async def test_pages_walk_every_subscription_in_creation_order(client, tenant, base):
    trigger_id = await create_trigger(client, tenant)
    created = [(await subscribe(client, tenant, trigger_id))["subscription"]["id"] for _ in range(5)]
    path = subscriptions_path(base, tenant.integration_id, trigger_id)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        response = await client.get(path, params=params, headers=tenant.auth)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        assert len(body["subscriptions"]) == (2 if pages < 3 else 1)
        seen += [s["id"] for s in body["subscriptions"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
        assert pages < 5, "the cursor never ends"
    assert pages == 3
    assert seen == created


async def test_an_exact_last_page_has_no_next_cursor(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    for _ in range(2):
        await subscribe(client, tenant, trigger_id)
    response = await client.get(subscriptions_path("", tenant.integration_id, trigger_id), params={"limit": 2},
                                headers=tenant.auth)
    assert len(response.json()["subscriptions"]) == 2
    assert response.json()["nextCursor"] is None


async def test_the_list_holds_only_this_triggers_subscriptions(client, tenant):
    mine = await create_trigger(client, tenant)
    other = await create_trigger(client, tenant)
    kept = (await subscribe(client, tenant, mine))["subscription"]["id"]
    await subscribe(client, tenant, other)
    response = await client.get(subscriptions_path("", tenant.integration_id, mine), headers=tenant.auth)
    assert [s["id"] for s in response.json()["subscriptions"]] == [kept]


@pytest.mark.parametrize("limit", ["0", "201", "abc", "-1", "1.5"])
async def test_a_bad_limit_is_400(client, tenant, limit):
    trigger_id = await create_trigger(client, tenant)
    response = await client.get(
        subscriptions_path("", tenant.integration_id, trigger_id), params={"limit": limit}, headers=tenant.auth
    )
    assert_problem(response, 400, "validation_error")
    assert error_fields(response) == ["limit"]


async def test_limits_at_the_bounds_are_accepted(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    for limit in ("1", "200"):
        response = await client.get(
            subscriptions_path("", tenant.integration_id, trigger_id), params={"limit": limit}, headers=tenant.auth
        )
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("cursor", ["garbage!!", "bm90IGpzb24", "WzFd", "WyJub3QgYSBkYXRlIiwieCJd", "x" * 600])
async def test_a_garbage_cursor_is_400_naming_cursor(client, tenant, cursor):
    trigger_id = await create_trigger(client, tenant)
    await subscribe(client, tenant, trigger_id)
    response = await client.get(
        subscriptions_path("", tenant.integration_id, trigger_id), params={"cursor": cursor}, headers=tenant.auth
    )
    assert_problem(response, 400, "validation_error")
    assert error_fields(response) == ["cursor"]


async def test_a_cursor_with_a_bad_id_is_400_naming_cursor(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    raw = json.dumps(["2026-01-01T00:00:00+00:00", "not-a-uuid"]).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = await client.get(
        subscriptions_path("", tenant.integration_id, trigger_id), params={"cursor": cursor}, headers=tenant.auth
    )
    assert_problem(response, 400, "validation_error")
    assert error_fields(response) == ["cursor"]


async def test_another_workspaces_trigger_cannot_be_probed(app, client, tenant):
    theirs = await make_tenant(app)
    their_trigger = await create_trigger(client, theirs)
    response = await client.get(subscriptions_path("", tenant.integration_id, their_trigger), headers=tenant.auth)
    assert_problem(response, 404, "trigger_not_found")

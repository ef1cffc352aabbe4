"""Who may use the subscription routes, and DELETE (of a subscription, and of its trigger)."""

from typing import Any

from odeus_triggers.auth.scopes import Scope

from support.helpers import assert_problem, key_for, make_tenant, trigger_path
from support.subscriptions import (
    create_body,
    create_trigger,
    fetched,
    listed,
    stored_row,
    stored_secret_rows,
    subscribe,
    subscription_path,
    subscriptions_path,
)


def _calls(base: str, integration_id: str, trigger_id: str, sub_id: str) -> list[tuple[str, str, Any]]:
    many = subscriptions_path(base, integration_id, trigger_id)
    one = subscription_path(base, integration_id, trigger_id, sub_id)
    return [
        ("POST", many, create_body()),
        ("GET", many, None),
        ("GET", one, None),
        ("PATCH", one, {"status": "paused"}),
        ("DELETE", one, None),
    ]


async def _send(client, method: str, path: str, body: Any, headers: dict[str, str]):
    return await client.request(method, path, json=body, headers=headers)


async def test_another_workspace_gets_403_on_every_route(app, client, tenant, base):
    trigger_id = await create_trigger(client, tenant)
    sub = (await subscribe(client, tenant, trigger_id))["subscription"]
    stranger = await make_tenant(app)
    for method, path, body in _calls(base, tenant.integration_id, trigger_id, sub["id"]):
        response = await _send(client, method, path, body, stranger.auth)
        assert_problem(response, 403, "integration_forbidden")
    assert await fetched(client, tenant, trigger_id, sub["id"]) == sub
    assert len(await listed(client, tenant, trigger_id)) == 1


async def test_without_a_key_401_and_without_the_scope_403(app, client, tenant, base):
    trigger_id = await create_trigger(client, tenant)
    sub = (await subscribe(client, tenant, trigger_id))["subscription"]
    assistant = await key_for(app, tenant, [Scope.ASSISTANT_API])
    for method, path, body in _calls(base, tenant.integration_id, trigger_id, sub["id"]):
        response = await _send(client, method, path, body, {})
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert_problem(await _send(client, method, path, body, assistant), 403, "insufficient_scope")
        wrong = {"Authorization": "Bearer odk_not-a-real-key"}
        assert_problem(await _send(client, method, path, body, wrong), 401, "unauthorized")
    assert await fetched(client, tenant, trigger_id, sub["id"]) == sub
    assert len(await listed(client, tenant, trigger_id)) == 1


async def test_another_key_of_the_same_workspace_may_use_them(app, client, tenant):
    trigger_id = await create_trigger(client, tenant)
    sub = (await subscribe(client, tenant, trigger_id))["subscription"]
    second = await key_for(app, tenant, [Scope.INTEGRATION_API])
    path = subscription_path("", tenant.integration_id, trigger_id, sub["id"])
    response = await client.get(path, headers=second)
    assert response.status_code == 200, response.text


async def test_delete_answers_its_id_then_404(app, client, tenant, base):
    trigger_id = await create_trigger(client, tenant)
    sub = (await subscribe(client, tenant, trigger_id, secrets={"A": "1"}))["subscription"]
    kept = (await subscribe(client, tenant, trigger_id))["subscription"]
    path = subscription_path(base, tenant.integration_id, trigger_id, sub["id"])
    response = await client.delete(path, headers=tenant.auth)
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "Subscription deleted", "id": sub["id"]}
    assert_problem(await client.get(path, headers=tenant.auth), 404, "subscription_not_found")
    assert_problem(await client.delete(path, headers=tenant.auth), 404, "subscription_not_found")
    assert_problem(await client.patch(path, json={}, headers=tenant.auth), 404, "subscription_not_found")
    assert [s["id"] for s in await listed(client, tenant, trigger_id)] == [kept["id"]]
    assert await stored_row(app, sub["id"]) is None
    assert await stored_secret_rows(app, sub["id"]) == []


async def test_deleting_the_trigger_deletes_its_subscriptions(app, client, tenant, base):
    trigger_id = await create_trigger(client, tenant)
    sub = (await subscribe(client, tenant, trigger_id, secrets={"A": "1"}))["subscription"]
    deleted = await client.delete(trigger_path(base, tenant.integration_id, trigger_id), headers=tenant.auth)
    assert deleted.status_code == 200, deleted.text
    path = subscription_path(base, tenant.integration_id, trigger_id, sub["id"])
    assert_problem(await client.get(path, headers=tenant.auth), 404, "subscription_not_found")
    many = subscriptions_path(base, tenant.integration_id, trigger_id)
    assert_problem(await client.get(many, headers=tenant.auth), 404, "trigger_not_found")
    assert await stored_row(app, sub["id"]) is None
    assert await stored_secret_rows(app, sub["id"]) == []

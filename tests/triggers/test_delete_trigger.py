"""DELETE /integrations/v1/{integrationId}/triggers/{triggerId}: the trigger and its fields go."""

import uuid

import pytest
from sqlalchemy import func, select

from odeus_triggers.auth.scopes import Scope
from odeus_triggers.db.tables import TriggerInputField
from odeus_triggers.triggers.examples import SEED_TRIGGER

from support.helpers import assert_problem, create_path, integration_path, key_for, make_tenant, trigger_path


async def create(client, tenant, body=SEED_TRIGGER):
    response = await client.post(create_path("", tenant.integration_id), json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()["trigger"]


async def field_count(app, trigger_id):
    async with app.state.engine.connect() as conn:
        return await conn.scalar(
            select(func.count()).select_from(TriggerInputField).where(TriggerInputField.trigger_id == uuid.UUID(trigger_id))
        )


async def test_delete_removes_the_trigger_and_its_fields_and_frees_the_name(app, client, tenant, base):
    trigger = await create(client, tenant)
    kept = await create(client, tenant, {"name": "Kept"})
    assert await field_count(app, trigger["id"]) == 2

    response = await client.delete(trigger_path(base, tenant.integration_id, trigger["id"]), headers=tenant.auth)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": "Trigger deleted", "id": trigger["id"]}

    listed = await client.get(integration_path(base, tenant.integration_id), headers=tenant.auth)
    assert [t["id"] for t in listed.json()["integration"]["triggers"]] == [kept["id"]]
    assert await field_count(app, trigger["id"]) == 0

    again = await create(client, tenant, {**SEED_TRIGGER, "name": "new issue CREATED"})
    assert again["id"] != trigger["id"]
    assert again["slug"] == "new-issue-created"  # the slug is free again too


async def test_a_deleted_trigger_is_gone_for_delete_and_put(client, tenant, base):
    trigger = await create(client, tenant)
    path = trigger_path(base, tenant.integration_id, trigger["id"])
    assert (await client.delete(path, headers=tenant.auth)).status_code == 200
    assert_problem(await client.delete(path, headers=tenant.auth), 404, "trigger_not_found")
    assert_problem(await client.put(path, json={"name": "Back"}, headers=tenant.auth), 404, "trigger_not_found")


@pytest.mark.parametrize("bad_id", ["123", "not-a-uuid", uuid.uuid4().hex])
async def test_a_trigger_id_that_is_not_a_uuid_is_400(client, tenant, base, bad_id):
    response = await client.delete(trigger_path(base, tenant.integration_id, bad_id), headers=tenant.auth)
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"] == [{"field": "triggerId", "message": "must be a UUID"}]


async def test_an_integration_id_that_is_not_a_uuid_is_400(client, tenant, base):
    response = await client.delete(trigger_path(base, "nope", str(uuid.uuid4())), headers=tenant.auth)
    assert_problem(response, 400, "validation_error")


async def test_an_unknown_trigger_is_404(client, tenant, base):
    response = await client.delete(trigger_path(base, tenant.integration_id, str(uuid.uuid4())), headers=tenant.auth)
    assert_problem(response, 404, "trigger_not_found")


async def test_a_trigger_of_another_integration_in_the_same_workspace_is_404_and_kept(app, client, tenant, base):
    from odeus_triggers.integrations.service import create_integration

    other = await create_integration(app.state.engine, tenant.workspace_id, "Other", None)
    trigger = await create(client, tenant)
    response = await client.delete(trigger_path(base, other["id"], trigger["id"]), headers=tenant.auth)
    assert_problem(response, 404, "trigger_not_found")
    assert await field_count(app, trigger["id"]) == 2


async def test_an_unknown_integration_is_404(client, tenant, base):
    response = await client.delete(trigger_path(base, str(uuid.uuid4()), str(uuid.uuid4())), headers=tenant.auth)
    assert_problem(response, 404, "integration_not_found")


async def test_another_workspaces_trigger_is_403_and_kept(app, client, base):
    mine, theirs = await make_tenant(app), await make_tenant(app)
    trigger = await create(client, theirs)
    response = await client.delete(trigger_path(base, theirs.integration_id, trigger["id"]), headers=mine.auth)
    assert_problem(response, 403, "integration_forbidden")
    assert await field_count(app, trigger["id"]) == 2


async def test_without_a_key_401_and_without_the_scope_403(app, client, tenant, base):
    trigger = await create(client, tenant)
    path = trigger_path(base, tenant.integration_id, trigger["id"])
    response = await client.delete(path)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assistant = await key_for(app, tenant, [Scope.ASSISTANT_API])
    assert_problem(await client.delete(path, headers=assistant), 403, "insufficient_scope")
    assert await field_count(app, trigger["id"]) == 2

"""PUT /integrations/v1/{integrationId}/triggers/{triggerId}: replaces the whole configuration."""

import asyncio
import copy
import uuid
from datetime import datetime

import pytest

from odeus_triggers.auth.scopes import Scope
from odeus_triggers.triggers.examples import SEED_TRIGGER

from support.helpers import (
    assert_problem,
    create_path,
    error_fields,
    integration_path,
    key_for,
    make_tenant,
    trigger_path,
)


async def create(client, tenant, body=SEED_TRIGGER, base=""):
    response = await client.post(create_path(base, tenant.integration_id), json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()["trigger"]


async def put(client, tenant, trigger_id, body, base=""):
    return await client.put(trigger_path(base, tenant.integration_id, trigger_id), json=body, headers=tenant.auth)


async def summaries(client, tenant):
    response = await client.get(integration_path("", tenant.integration_id), headers=tenant.auth)
    assert response.status_code == 200, response.text
    return response.json()["integration"]["triggers"]


async def test_put_replaces_the_configuration_and_resets_what_is_left_out(client, tenant, base):
    before = await create(client, tenant, base=base)
    response = await put(client, tenant, before["id"], {"name": "Renamed", "inputFields": [{"label": "Repo URL"}]}, base)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    after = response.json()["trigger"]
    assert after["id"] == before["id"]
    assert after["slug"] == "new-issue-created"  # kept on rename: workflows refer to it
    assert after["name"] == "Renamed"
    assert (after["description"], after["pollingCode"], after["type"]) == ("", None, "WEBHOOK")
    assert after["inputFields"] == [{
        "slug": "repoUrl", "label": "Repo URL", "type": "TEXT", "description": "", "placeholder": None,
        "required": False, "options": None, "allowMultiSelect": None,
    }]
    assert after["createdAt"] == before["createdAt"]
    assert datetime.fromisoformat(after["updatedAt"]) > datetime.fromisoformat(before["createdAt"])
    assert await summaries(client, tenant) == [
        {"id": before["id"], "name": "Renamed", "slug": "new-issue-created", "description": "", "type": "WEBHOOK"}
    ]


async def test_a_minimal_body_removes_every_input_field(client, tenant):
    trigger = await create(client, tenant)
    response = await put(client, tenant, trigger["id"], {"name": trigger["name"]})
    assert response.status_code == 200, response.text
    assert response.json()["trigger"]["inputFields"] == []
    again = await put(client, tenant, trigger["id"], {"name": trigger["name"], "inputFields": None})
    assert again.json()["trigger"]["inputFields"] == []


async def test_input_fields_are_replaced_in_order_with_recomputed_slugs(client, tenant):
    trigger = await create(client, tenant)
    fields = [
        {"label": "Priority Filter", "type": "SELECT", "options": [{"label": "Hi", "value": "hi"}], "allowMultiSelect": True},
        {"label": "Team Name", "required": True},
        {"label": "Project ID", "type": "NUMBER"},
    ]
    response = await put(client, tenant, trigger["id"], {**SEED_TRIGGER, "inputFields": fields})
    assert response.status_code == 200, response.text
    out = response.json()["trigger"]["inputFields"]
    assert [(f["slug"], f["type"]) for f in out] == [("priorityFilter", "SELECT"), ("teamName", "TEXT"), ("projectId", "NUMBER")]
    assert out[0]["options"] == [{"label": "Hi", "value": "hi"}] and out[0]["allowMultiSelect"] is True
    assert out[1]["required"] is True and out[2]["options"] is None


async def test_a_trigger_read_from_the_api_can_be_sent_back_unchanged(client, tenant, base):
    trigger = await create(client, tenant, base=base)
    response = await put(client, tenant, trigger["id"], copy.deepcopy(trigger), base)
    assert response.status_code == 200, response.text
    after = response.json()["trigger"]
    assert {k: v for k, v in after.items() if k != "updatedAt"} == {k: v for k, v in trigger.items() if k != "updatedAt"}


async def test_renaming_onto_another_triggers_name_is_409_and_changes_nothing(client, tenant, base):
    first = await create(client, tenant, {"name": "Deploy Finished"}, base)
    second = await create(client, tenant, {"name": "Build Started"}, base)
    for taken in ("Deploy Finished", "  deploy FINISHED "):
        response = await put(client, tenant, second["id"], {"name": taken, "inputFields": [{"label": "X"}]}, base)
        assert_problem(response, 409, "trigger_name_conflict")
    names = {t["id"]: t["name"] for t in await summaries(client, tenant)}
    assert names == {first["id"]: "Deploy Finished", second["id"]: "Build Started"}


async def test_renaming_to_its_own_name_in_another_case_is_fine(client, tenant):
    trigger = await create(client, tenant, {"name": "Deploy Finished"})
    response = await put(client, tenant, trigger["id"], {"name": " DEPLOY finished "})
    assert response.status_code == 200, response.text
    assert (response.json()["trigger"]["name"], response.json()["trigger"]["slug"]) == ("DEPLOY finished", "deploy-finished")


async def test_two_concurrent_renames_onto_one_name_give_one_200_and_one_409(client, tenant):
    a = await create(client, tenant, {"name": "A"})
    b = await create(client, tenant, {"name": "B"})
    responses = await asyncio.gather(
        put(client, tenant, a["id"], {"name": "Same"}), put(client, tenant, b["id"], {"name": "Same"})
    )
    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]


async def test_the_body_rules_of_create_apply_and_are_listed_at_once(client, tenant, base):
    trigger = await create(client, tenant)
    body = {"name": " ", "pollingcode": "x", "inputFields": [{"label": "L", "type": "SELECT"}, {"label": "M", "options": []}]}
    response = await put(client, tenant, trigger["id"], body, base)
    assert_problem(response, 400, "validation_error")
    assert set(error_fields(response)) >= {"name", "pollingcode", "inputFields[0].options", "inputFields[1].options"}
    assert (await summaries(client, tenant))[0]["name"] == trigger["name"]


@pytest.mark.parametrize("bad_id", ["123", "not-a-uuid", uuid.uuid4().hex, f"{{{uuid.uuid4()}}}"])
async def test_a_trigger_id_that_is_not_a_uuid_is_400(client, tenant, base, bad_id):
    response = await put(client, tenant, bad_id, {"name": "X"}, base)
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"] == [{"field": "triggerId", "message": "must be a UUID"}]


async def test_an_integration_id_that_is_not_a_uuid_is_400(client, tenant, base):
    response = await client.put(trigger_path(base, "nope", str(uuid.uuid4())), json={"name": "X"}, headers=tenant.auth)
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"] == [{"field": "integrationId", "message": "must be a UUID"}]


async def test_an_unknown_trigger_is_404(client, tenant, base):
    assert_problem(await put(client, tenant, str(uuid.uuid4()), {"name": "X"}, base), 404, "trigger_not_found")


async def test_a_trigger_of_another_integration_in_the_same_workspace_is_404(app, client, tenant, base):
    from odeus_triggers.integrations.service import create_integration

    other = await create_integration(app.state.engine, tenant.workspace_id, "Other", None)
    trigger = await create(client, tenant)
    response = await client.put(trigger_path(base, other["id"], trigger["id"]), json={"name": "X"}, headers=tenant.auth)
    assert_problem(response, 404, "trigger_not_found")
    assert (await summaries(client, tenant))[0]["name"] == trigger["name"]


async def test_an_unknown_integration_is_404(client, tenant, base):
    response = await client.put(trigger_path(base, str(uuid.uuid4()), str(uuid.uuid4())), json={"name": "X"}, headers=tenant.auth)
    assert_problem(response, 404, "integration_not_found")


async def test_another_workspaces_trigger_is_403_and_untouched(app, client, base):
    mine, theirs = await make_tenant(app), await make_tenant(app)
    trigger = await create(client, theirs)
    response = await client.put(
        trigger_path(base, theirs.integration_id, trigger["id"]), json={"name": "Mine"}, headers=mine.auth
    )
    assert_problem(response, 403, "integration_forbidden")
    assert (await summaries(client, theirs))[0]["name"] == trigger["name"]


async def test_without_a_key_401_and_without_the_scope_403(app, client, tenant, base):
    trigger = await create(client, tenant)
    path = trigger_path(base, tenant.integration_id, trigger["id"])
    response = await client.put(path, json={"name": "X"})
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assistant = await key_for(app, tenant, [Scope.ASSISTANT_API])
    assert_problem(await client.put(path, json={"name": "X"}, headers=assistant), 403, "insufficient_scope")


async def test_check_order(app, client):
    mine, theirs = await make_tenant(app), await make_tenant(app)
    assistant = await key_for(app, mine, [Scope.ASSISTANT_API])
    unknown = str(uuid.uuid4())
    # scope before validation
    response = await client.put(trigger_path("", "bad", "bad"), json={"name": ""}, headers=assistant)
    assert_problem(response, 403, "insufficient_scope")
    # validation before existence and access
    for integration_id in (unknown, theirs.integration_id):
        response = await client.put(trigger_path("", integration_id, unknown), json={"name": ""}, headers=mine.auth)
        assert_problem(response, 400, "validation_error")
    # access before the trigger's existence
    response = await client.put(trigger_path("", theirs.integration_id, unknown), json={"name": "X"}, headers=mine.auth)
    assert_problem(response, 403, "integration_forbidden")

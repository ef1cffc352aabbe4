"""GET …/triggers/{triggerId} and GET …/triggers: whole triggers, as create and update answer
them, so that a client can read, change and PUT back (read-modify-write)."""

import copy
import uuid

import pytest

from odeus_triggers.auth.scopes import Scope
from odeus_triggers.triggers.examples import SEED_TRIGGER

from support.helpers import assert_problem, create_path, error_fields, key_for, make_tenant, trigger_path


def list_path(base, integration_id):
    return f"{base}/integrations/v1/{integration_id}/triggers"


async def create(client, tenant, body=SEED_TRIGGER, base=""):
    response = await client.post(create_path(base, tenant.integration_id), json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()["trigger"]


async def get(client, tenant, trigger_id, base="", headers=None):
    return await client.get(trigger_path(base, tenant.integration_id, trigger_id), headers=headers or tenant.auth)


async def list_all(client, tenant, base="", limit=None):
    """Every page of the integration's triggers, and the number of pages it took."""
    triggers, cursor, pages = [], None, 0
    while True:
        params = {k: v for k, v in (("limit", limit), ("cursor", cursor)) if v is not None}
        response = await client.get(list_path(base, tenant.integration_id), params=params, headers=tenant.auth)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        page = response.json()
        assert set(page) == {"triggers", "nextCursor"}
        triggers += page["triggers"]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            return triggers, pages
        assert len(page["triggers"]) == limit


async def test_get_answers_the_trigger_as_create_did(client, tenant, base):
    created = await create(client, tenant, base=base)
    response = await get(client, tenant, created["id"], base)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"trigger": created}
    fields = response.json()["trigger"]["inputFields"]
    assert [f["slug"] for f in fields] == ["projectId", "priorityFilter"]  # in the order sent
    assert fields[1]["options"] == SEED_TRIGGER["inputFields"][1]["options"]
    assert (fields[0]["options"], fields[0]["allowMultiSelect"], fields[1]["allowMultiSelect"]) == (None, None, False)


async def test_get_shows_what_update_wrote(client, tenant):
    created = await create(client, tenant, {"name": "Before", "inputFields": [{"label": "A"}, {"label": "B"}]})
    put = await client.put(trigger_path("", tenant.integration_id, created["id"]),
                           json={"name": "After", "inputFields": [{"label": "C", "type": "NUMBER"}]}, headers=tenant.auth)
    assert put.status_code == 200, put.text
    assert (await get(client, tenant, created["id"])).json() == put.json()


async def test_a_trigger_read_with_get_can_be_put_back_as_it_is(client, tenant, base):
    created = await create(client, tenant, base=base)
    read = (await get(client, tenant, created["id"], base)).json()["trigger"]
    response = await client.put(trigger_path(base, tenant.integration_id, read["id"]), json=copy.deepcopy(read),
                                headers=tenant.auth)
    assert response.status_code == 200, response.text
    written = response.json()["trigger"]
    assert {k: v for k, v in written.items() if k != "updatedAt"} == {k: v for k, v in read.items() if k != "updatedAt"}
    assert (await get(client, tenant, read["id"], base)).json() == {"trigger": written}


async def test_read_modify_write_changes_only_what_was_changed(client, tenant, base):
    created = await create(client, tenant, base=base)
    trigger = (await get(client, tenant, created["id"], base)).json()["trigger"]
    trigger["name"] = "Issue Opened"
    trigger["inputFields"][1]["options"].append({"label": "Urgent", "value": "urgent"})
    trigger["inputFields"][1]["allowMultiSelect"] = True
    trigger["inputFields"].append({"label": "Assignee", "required": False})
    response = await client.put(trigger_path(base, tenant.integration_id, trigger["id"]), json=trigger, headers=tenant.auth)
    assert response.status_code == 200, response.text
    after = (await get(client, tenant, trigger["id"], base)).json()["trigger"]
    assert after == response.json()["trigger"]
    assert (after["name"], after["slug"]) == ("Issue Opened", "new-issue-created")  # the slug is kept
    assert (after["description"], after["pollingCode"]) == (created["description"], created["pollingCode"])
    assert [f["slug"] for f in after["inputFields"]] == ["projectId", "priorityFilter", "assignee"]
    assert after["inputFields"][0] == created["inputFields"][0]
    assert after["inputFields"][1]["options"][-1] == {"label": "Urgent", "value": "urgent"}
    assert after["inputFields"][1]["allowMultiSelect"] is True
    assert after["inputFields"][2] == {
        "slug": "assignee", "label": "Assignee", "type": "TEXT", "description": "", "placeholder": None,
        "required": False, "options": None, "allowMultiSelect": None,
    }


async def test_every_trigger_of_a_list_can_be_put_back_as_it_is(client, tenant):
    await create(client, tenant)
    await create(client, tenant, {"name": "Webhook only", "description": "no code"})
    listed, _ = await list_all(client, tenant)
    for trigger in listed:
        response = await client.put(trigger_path("", tenant.integration_id, trigger["id"]), json=trigger,
                                    headers=tenant.auth)
        assert response.status_code == 200, response.text
        assert {**response.json()["trigger"], "updatedAt": None} == {**trigger, "updatedAt": None}


async def test_list_pages_through_every_trigger_oldest_first(client, tenant, base):
    made = [await create(client, tenant, {"name": f"Trigger {i}", "inputFields": [{"label": f"F{i}"}]}, base)
            for i in range(5)]
    listed, pages = await list_all(client, tenant, base, limit=2)
    assert pages == 3
    assert listed == made  # whole triggers, in creation order, none twice
    one_page, pages = await list_all(client, tenant, base)
    assert (one_page, pages) == (made, 1)
    exact, pages = await list_all(client, tenant, base, limit=5)
    assert (exact, pages) == (made, 1)  # no empty last page


async def test_list_of_an_integration_without_triggers_is_empty(client, tenant, base):
    response = await client.get(list_path(base, tenant.integration_id), headers=tenant.auth)
    assert response.status_code == 200, response.text
    assert response.json() == {"triggers": [], "nextCursor": None}


async def test_list_shows_the_integration_s_own_triggers_only(app, client, tenant):
    other = await make_tenant(app)
    mine = await create(client, tenant, {"name": "Mine"})
    await create(client, other, {"name": "Theirs"})
    listed, _ = await list_all(client, tenant)
    assert [t["id"] for t in listed] == [mine["id"]]


async def test_a_deleted_trigger_is_gone_from_get_and_list(client, tenant):
    kept = await create(client, tenant, {"name": "Kept"})
    gone = await create(client, tenant, {"name": "Gone"})
    deleted = await client.delete(trigger_path("", tenant.integration_id, gone["id"]), headers=tenant.auth)
    assert deleted.status_code == 200, deleted.text
    assert_problem(await get(client, tenant, gone["id"]), 404, "trigger_not_found")
    listed, _ = await list_all(client, tenant)
    assert [t["id"] for t in listed] == [kept["id"]]


@pytest.mark.parametrize("limit", ["0", "201", "-1", "ten", "1.5"])
async def test_a_limit_outside_1_to_200_is_400(client, tenant, limit):
    response = await client.get(list_path("", tenant.integration_id), params={"limit": limit}, headers=tenant.auth)
    assert_problem(response, 400, "validation_error")
    assert error_fields(response) == ["limit"]


async def test_limit_bounds_are_inclusive(client, tenant):
    await create(client, tenant, {"name": "Only"})
    for limit in (1, 200):
        response = await client.get(list_path("", tenant.integration_id), params={"limit": limit}, headers=tenant.auth)
        assert response.status_code == 200, response.text
        assert len(response.json()["triggers"]) == 1 and response.json()["nextCursor"] is None


@pytest.mark.parametrize("cursor", ["not-a-cursor", "WyJ4Il0", "WyIyMDI2LTEyLTA2VDAwOjAwOjAwKzAwOjAwIiwibm9wZSJd"])
async def test_a_cursor_that_the_list_did_not_give_is_400(client, tenant, cursor):
    response = await client.get(list_path("", tenant.integration_id), params={"cursor": cursor}, headers=tenant.auth)
    assert_problem(response, 400, "validation_error")
    assert error_fields(response) == ["cursor"]


async def test_get_of_a_trigger_that_does_not_exist_is_404(client, tenant, base):
    assert_problem(await get(client, tenant, str(uuid.uuid4()), base), 404, "trigger_not_found")


async def test_get_of_a_trigger_of_another_integration_is_404(client, tenant, base):
    trigger = await create(client, tenant)
    other = await client.post(f"{base}/integrations/v1/create", json={"name": "Other"}, headers=tenant.auth)
    assert other.status_code == 201, other.text
    response = await client.get(trigger_path(base, other.json()["integration"]["id"], trigger["id"]), headers=tenant.auth)
    assert_problem(response, 404, "trigger_not_found")


@pytest.mark.parametrize("which", ["one", "list"])
async def test_an_integration_that_does_not_exist_is_404(client, tenant, base, which):
    missing = str(uuid.uuid4())
    path = trigger_path(base, missing, str(uuid.uuid4())) if which == "one" else list_path(base, missing)
    assert_problem(await client.get(path, headers=tenant.auth), 404, "integration_not_found")


@pytest.mark.parametrize("which", ["one", "list"])
async def test_another_workspace_s_integration_is_403(app, client, tenant, base, which):
    other = await make_tenant(app)
    trigger = await create(client, other)
    path = trigger_path(base, other.integration_id, trigger["id"]) if which == "one" else list_path(base, other.integration_id)
    problem = assert_problem(await client.get(path, headers=tenant.auth), 403, "integration_forbidden")
    assert problem["detail"] == "No access to this integration."
    assert "errors" not in problem
    assert trigger["name"] not in (await client.get(path, headers=tenant.auth)).text


@pytest.mark.parametrize("which", ["one", "list"])
async def test_auth_then_scope_then_validation(app, client, tenant, base, which):
    trigger = await create(client, tenant)

    def path(integration_id, trigger_id=trigger["id"]):
        if which == "one":
            return trigger_path(base, integration_id, trigger_id)
        return list_path(base, integration_id)

    assert_problem(await client.get(path(tenant.integration_id)), 401, "unauthorized")
    bad_key = {"Authorization": "Bearer odk_not-a-real-key"}
    response = await client.get(path(tenant.integration_id), headers=bad_key)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assistant = await key_for(app, tenant, [Scope.ASSISTANT_API])
    assert_problem(await client.get(path(tenant.integration_id), headers=assistant), 403, "insufficient_scope")
    assert_problem(await client.get(path("not-a-uuid"), headers=assistant), 403, "insufficient_scope")
    response = await client.get(path("not-a-uuid"), headers=tenant.auth)
    assert_problem(response, 400, "validation_error")
    assert error_fields(response) == ["integrationId"]
    if which == "one":
        response = await client.get(path(tenant.integration_id, "nope"), headers=tenant.auth)
        assert_problem(response, 400, "validation_error")
        assert error_fields(response) == ["triggerId"]

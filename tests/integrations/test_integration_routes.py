"""The integration routes: create, list (the caller's workspace only) and read with trigger summaries."""

import uuid
from datetime import datetime

import pytest

from odeus_triggers.auth.scopes import Scope

from support.helpers import assert_problem, create_path, error_fields, integration_path, key_for, make_tenant


def list_path(base):
    return f"{base}/integrations/v1/get"


def new_path(base):
    return f"{base}/integrations/v1/create"


async def test_create_returns_the_integration(client, tenant, base):
    response = await client.post(new_path(base), json={"name": "  Billing  ", "description": "Invoices\tand refunds"},
                                 headers=tenant.auth)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    integration = response.json()["integration"]
    assert set(integration) == {"id", "name", "description", "createdAt"}
    uuid.UUID(integration["id"])
    assert (integration["name"], integration["description"]) == ("Billing", "Invoices\tand refunds")
    assert datetime.fromisoformat(integration["createdAt"]).utcoffset().total_seconds() == 0


async def test_create_with_only_a_name_stores_an_empty_description(client, tenant):
    for body in ({"name": "N"}, {"name": "N", "description": None}):
        response = await client.post(new_path(""), json=body, headers=tenant.auth)
        assert response.status_code == 201, response.text
        assert response.json()["integration"]["description"] == ""


async def test_limits_are_inclusive_and_count_code_points(client, tenant):
    response = await client.post(new_path(""), json={"name": "é" * 40, "description": "ü" * 90}, headers=tenant.auth)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({}, "name", "required"),
        ({"name": "   "}, "name", "empty"),
        ({"name": "x" * 41}, "name", "at most 40"),
        ({"name": 7}, "name", "string"),
        ({"name": "a\x00b"}, "name", "control"),
        ({"name": "ok", "description": "d" * 91}, "description", "at most 90"),
        ({"name": "ok", "description": "bell\x07"}, "description", "control"),
        ({"name": "ok", "descripton": "typo"}, "descripton", "did you mean 'description'"),
    ],
)
async def test_each_rule_gives_a_400_naming_the_field(client, tenant, body, field, fragment):
    response = await client.post(new_path(""), json=body, headers=tenant.auth)
    problem = assert_problem(response, 400, "validation_error")
    [error] = [e for e in problem["errors"] if e["field"] == field]
    assert fragment in error["message"]


async def test_every_problem_is_listed_at_once(client, tenant, base):
    response = await client.post(new_path(base), json={"name": "", "description": "d" * 91, "id": "x"}, headers=tenant.auth)
    assert_problem(response, 400, "validation_error")
    assert sorted(error_fields(response)) == ["description", "id", "name"]


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'"name"'])
async def test_a_body_that_is_not_a_json_object_is_400(client, tenant, raw):
    response = await client.post(new_path(""), content=raw, headers={**tenant.auth, "Content-Type": "application/json"})
    assert_problem(response, 400, "validation_error")


async def test_a_body_that_is_not_json_is_415(client, tenant):
    response = await client.post(new_path(""), content=b"name=x", headers={**tenant.auth, "Content-Type": "text/plain"})
    assert_problem(response, 415, "unsupported_media_type")


async def test_create_needs_a_key_with_the_integration_scope(app, client, tenant, base):
    response = await client.post(new_path(base), json={"name": "X"})
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assistant = await key_for(app, tenant, [Scope.ASSISTANT_API])
    problem = assert_problem(await client.post(new_path(base), json={"name": "X"}, headers=assistant), 403, "insufficient_scope")
    assert "INTEGRATION_API" in problem["detail"]
    # scope before validation
    assert_problem(await client.post(new_path(base), json={"name": ""}, headers=assistant), 403, "insufficient_scope")


async def test_list_shows_only_the_callers_workspace_oldest_first(app, client, base):
    mine, theirs = await make_tenant(app), await make_tenant(app)
    created = [(await client.post(new_path(base), json={"name": f"Mine {i}"}, headers=mine.auth)).json()["integration"]
               for i in range(3)]
    await client.post(new_path(base), json={"name": "Theirs"}, headers=theirs.auth)
    response = await client.get(list_path(base), headers=mine.auth)
    assert response.status_code == 200, response.text
    listed = response.json()["integrations"]
    assert [i["id"] for i in listed] == [mine.integration_id, *(c["id"] for c in created)]
    assert listed[1:] == created
    assert theirs.integration_id not in {i["id"] for i in listed}


async def test_list_accepts_the_assistant_scope_but_not_a_key_without_scopes(app, client, tenant, base):
    assistant = await key_for(app, tenant, [Scope.ASSISTANT_API])
    response = await client.get(list_path(base), headers=assistant)
    assert response.status_code == 200, response.text
    assert [i["id"] for i in response.json()["integrations"]] == [tenant.integration_id]
    bare = await key_for(app, tenant, [])
    problem = assert_problem(await client.get(list_path(base), headers=bare), 403, "insufficient_scope")
    assert "INTEGRATION_API or ASSISTANT_API" in problem["detail"]
    assert_problem(await client.get(list_path(base)), 401, "unauthorized")


async def test_read_returns_the_integration_with_trigger_summaries_oldest_first(client, tenant, base):
    names = ["Zeta", "Alpha", "Mu"]
    triggers = []
    for name in names:
        body = {"name": name, "description": f"About {name}"}
        if name == "Alpha":
            body["pollingCode"] = "return [];"
        response = await client.post(create_path(base, tenant.integration_id), json=body, headers=tenant.auth)
        triggers.append(response.json()["trigger"])
    response = await client.get(integration_path(base, tenant.integration_id), headers=tenant.auth)
    assert response.status_code == 200, response.text
    integration = response.json()["integration"]
    assert (integration["id"], integration["name"], integration["description"]) == (
        tenant.integration_id, "Tracker", "Issue tracker")
    assert integration["triggers"] == [
        {"id": t["id"], "name": t["name"], "slug": t["slug"], "description": t["description"], "type": t["type"]}
        for t in triggers
    ]
    assert [t["type"] for t in integration["triggers"]] == ["WEBHOOK", "POLLING", "WEBHOOK"]


async def test_read_of_a_new_integration_has_no_triggers(client, tenant):
    created = (await client.post(new_path(""), json={"name": "Empty"}, headers=tenant.auth)).json()["integration"]
    response = await client.get(integration_path("", created["id"]), headers=tenant.auth)
    assert response.json() == {"integration": {**created, "triggers": []}}


# Not "create": /integrations/v1/create is a path of its own, where GET is 405 (see test_methods.py).
@pytest.mark.parametrize("bad_id", ["123", "not-a-uuid", uuid.uuid4().hex])
async def test_read_of_an_id_that_is_not_a_uuid_is_400(client, tenant, base, bad_id):
    response = await client.get(integration_path(base, bad_id), headers=tenant.auth)
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"] == [{"field": "integrationId", "message": "must be a UUID"}]


async def test_read_of_an_unknown_integration_is_404(client, tenant, base):
    response = await client.get(integration_path(base, str(uuid.uuid4())), headers=tenant.auth)
    assert_problem(response, 404, "integration_not_found")


async def test_read_of_another_workspaces_integration_is_403(app, client, base):
    mine, theirs = await make_tenant(app), await make_tenant(app)
    response = await client.get(integration_path(base, theirs.integration_id), headers=mine.auth)
    problem = assert_problem(response, 403, "integration_forbidden")
    assert problem["detail"] == "No access to this integration."


async def test_read_needs_a_key_with_the_integration_scope(app, client, tenant, base):
    assert_problem(await client.get(integration_path(base, tenant.integration_id)), 401, "unauthorized")
    assistant = await key_for(app, tenant, [Scope.ASSISTANT_API])
    response = await client.get(integration_path(base, tenant.integration_id), headers=assistant)
    assert_problem(response, 403, "insufficient_scope")
    # scope before validation
    assert_problem(await client.get(integration_path(base, "bad"), headers=assistant), 403, "insufficient_scope")


async def test_the_routes_are_documented_once_each(app):
    paths = app.openapi()["paths"]
    assert set(paths["/integrations/v1/get"]) == {"get"}
    assert set(paths["/integrations/v1/create"]) == {"post"}
    assert set(paths["/integrations/v1/{integrationId}"]) == {"get"}
    assert set(paths["/integrations/v1/{integrationId}/triggers/{triggerId}"]) == {"get", "put", "delete"}
    assert set(paths["/integrations/v1/{integrationId}/triggers"]) == {"get"}
    assert not any(p.startswith("/api/public") for p in paths)
    for path, method in [("/integrations/v1/create", "post"), ("/integrations/v1/{integrationId}/triggers/{triggerId}", "put")]:
        ref = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[1] in app.openapi()["components"]["schemas"]

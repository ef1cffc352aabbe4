"""POST /integrations/v1/{integrationId}/triggers/create: the success path, at both bases."""

import copy
import uuid
from datetime import datetime

from odeus_triggers.triggers.examples import SEED_TRIGGER

from support.helpers import create_path


async def test_seed_example_creates_the_documented_trigger(client, tenant, base):
    response = await client.post(create_path(base, tenant.integration_id), json=SEED_TRIGGER, headers=tenant.auth)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    trigger = response.json()["trigger"]
    uuid.UUID(trigger["id"])
    assert trigger["name"] == "New Issue Created"
    assert trigger["slug"] == "new-issue-created"
    assert trigger["description"] == SEED_TRIGGER["description"]
    assert trigger["type"] == "POLLING"
    assert trigger["pollingCode"] == SEED_TRIGGER["pollingCode"]
    assert [f["slug"] for f in trigger["inputFields"]] == ["projectId", "priorityFilter"]
    project, priority = trigger["inputFields"]
    assert project == {
        "slug": "projectId", "label": "Project ID", "type": "TEXT",
        "description": "The ID of the project to monitor", "placeholder": "e.g., proj_123",
        "required": True, "options": None, "allowMultiSelect": None,
    }
    assert priority["options"] == SEED_TRIGGER["inputFields"][1]["options"]
    assert priority["allowMultiSelect"] is False
    assert priority["placeholder"] is None
    created = datetime.fromisoformat(trigger["createdAt"])
    assert created.utcoffset().total_seconds() == 0
    assert trigger["updatedAt"] == trigger["createdAt"]


async def test_defaults_for_a_minimal_body(client, tenant, base):
    response = await client.post(
        create_path(base, tenant.integration_id),
        json={"name": "Minimal", "inputFields": [{"label": "Token"}]},
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    trigger = response.json()["trigger"]
    assert trigger["description"] == ""
    assert trigger["pollingCode"] is None
    assert trigger["type"] == "WEBHOOK"
    assert trigger["inputFields"] == [{
        "slug": "token", "label": "Token", "type": "TEXT", "description": "", "placeholder": None,
        "required": False, "options": None, "allowMultiSelect": None,
    }]


async def test_nulls_take_the_defaults(client, tenant):
    body = {"name": "Nulls", "description": None, "pollingCode": None, "inputFields": None}
    response = await client.post(create_path("", tenant.integration_id), json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    trigger = response.json()["trigger"]
    assert (trigger["description"], trigger["pollingCode"], trigger["inputFields"]) == ("", None, [])


async def test_blank_polling_code_is_stored_as_null(client, tenant):
    body = {"name": "Blank code", "pollingCode": "  \n\t "}
    response = await client.post(create_path("", tenant.integration_id), json=body, headers=tenant.auth)
    assert response.status_code == 201
    assert response.json()["trigger"]["pollingCode"] is None
    assert response.json()["trigger"]["type"] == "WEBHOOK"


async def test_name_is_trimmed(client, tenant):
    response = await client.post(
        create_path("", tenant.integration_id), json={"name": "  Padded name \t"}, headers=tenant.auth
    )
    assert response.status_code == 201
    assert response.json()["trigger"]["name"] == "Padded name"
    assert response.json()["trigger"]["slug"] == "padded-name"


async def test_limits_are_inclusive_and_count_code_points(client, tenant):
    body = {
        "name": "é" * 100,
        "description": "ü" * 90,
        "pollingCode": "x" * 1000,
        "inputFields": [{"label": f"Field {i}"} for i in range(50)],
    }
    response = await client.post(create_path("", tenant.integration_id), json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    trigger = response.json()["trigger"]
    assert len(trigger["inputFields"]) == 50
    assert trigger["slug"] == "e" * 100


async def test_input_fields_keep_their_order(client, tenant):
    labels = ["Zeta", "Alpha", "Mu", "Beta", "Omega"]
    body = {"name": "Ordered", "inputFields": [{"label": label} for label in labels]}
    response = await client.post(create_path("", tenant.integration_id), json=body, headers=tenant.auth)
    assert [f["label"] for f in response.json()["trigger"]["inputFields"]] == labels


async def test_every_field_type_is_accepted(client, tenant):
    types = ["TEXT", "MULTI_LINE_TEXT", "NUMBER", "BOOLEAN", "PASSWORD", "VECTOR"]
    fields = [{"label": t, "type": t} for t in types]
    fields.append({"label": "Pick", "type": "SELECT", "options": [{"label": "A", "value": "a"}],
                   "allowMultiSelect": True})
    response = await client.post(
        create_path("", tenant.integration_id), json={"name": "Types", "inputFields": fields}, headers=tenant.auth
    )
    assert response.status_code == 201, response.text
    out = response.json()["trigger"]["inputFields"]
    assert [f["type"] for f in out] == [*types, "SELECT"]
    assert out[-1]["allowMultiSelect"] is True


async def test_multi_line_texts_keep_tab_newline_and_carriage_return(client, tenant):
    body = {"name": "Multi", "description": "a\tb\r\nc", "pollingCode": "return [];\r\n\t// done",
            "inputFields": [{"label": "X", "description": "line 1\nline 2"}]}
    response = await client.post(create_path("", tenant.integration_id), json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    trigger = response.json()["trigger"]
    assert trigger["description"] == body["description"]
    assert trigger["pollingCode"] == body["pollingCode"]
    assert trigger["inputFields"][0]["description"] == "line 1\nline 2"


async def test_a_trigger_read_from_the_api_can_be_sent_back(client, tenant, base):
    first = await client.post(create_path(base, tenant.integration_id), json=SEED_TRIGGER, headers=tenant.auth)
    echoed = copy.deepcopy(first.json()["trigger"])
    echoed["name"] = "Copy of it"
    response = await client.post(create_path(base, tenant.integration_id), json=echoed, headers=tenant.auth)
    assert response.status_code == 201, response.text
    second = response.json()["trigger"]
    assert second["id"] != echoed["id"] and second["slug"] == "copy-of-it"
    assert second["inputFields"] == first.json()["trigger"]["inputFields"]


async def test_json_with_a_charset_parameter_is_accepted(client, tenant):
    response = await client.post(
        create_path("", tenant.integration_id),
        content=b'{"name": "Charset"}',
        headers={**tenant.auth, "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201


async def test_request_id_is_echoed_when_supplied(client, tenant):
    response = await client.post(
        create_path("", tenant.integration_id), json={"name": "Traced"},
        headers={**tenant.auth, "X-Request-ID": "abc-123"},
    )
    assert response.headers["x-request-id"] == "abc-123"

"""A create body with problems: one 400 naming every bad field, and nothing written."""

from typing import Any

import pytest

from support.helpers import assert_problem, error_fields
from support.subscriptions import INPUTS, WEBHOOK, create_body, create_trigger, listed, subscriptions_path

MANY_SECRETS = {f"S{i}": "v" for i in range(51)}
LONG_URL = "https://93.184.215.14/" + "a" * 2048

CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "empty body": ({}, ["inputs", "webhookUrl"]),
    "no webhookUrl": ({"inputs": INPUTS}, ["webhookUrl"]),
    "no inputs": ({"webhookUrl": WEBHOOK}, ["inputs"]),
    "unknown field": (create_body(colour="red"), ["colour"]),
    "inputs not an object": (create_body(inputs=[]), ["inputs"]),
    "required input missing": (create_body(inputs={"priority": "high"}), ["inputs.projectId"]),
    "input of the wrong type": (create_body(inputs={**INPUTS, "limit": "five"}), ["inputs.limit"]),
    "unknown input": (create_body(inputs={**INPUTS, "colour": "red"}), ["inputs.colour", "inputs"]),
    "option not allowed": (create_body(inputs={**INPUTS, "priority": "urgent"}), ["inputs.priority"]),
    "password kept with nothing stored": (create_body(inputs={**INPUTS, "apiKey": {"set": True}}), ["inputs.apiKey"]),
    "password not a string": (create_body(inputs={**INPUTS, "apiKey": 7}), ["inputs.apiKey"]),
    "bad secret name": (create_body(secrets={"1BAD": "x", "has-dash": "y"}), ['secrets["1BAD"]', 'secrets["has-dash"]']),
    "secret over 8 KiB": (create_body(secrets={"BIG": "é" * 4097}), ["secrets.BIG"]),
    "over 50 secrets": (create_body(secrets=MANY_SECRETS), ["secrets"]),
    "interval below the minimum": (create_body(intervalSeconds=0), ["intervalSeconds"]),
    "interval above a day": (create_body(intervalSeconds=86_401), ["intervalSeconds"]),
    "interval not an integer": (create_body(intervalSeconds=1.5), ["intervalSeconds"]),
    "interval a string": (create_body(intervalSeconds="300"), ["intervalSeconds"]),
    "ftp webhook": (create_body(webhookUrl="ftp://93.184.215.14/x"), ["webhookUrl"]),
    "webhook without a host": (create_body(webhookUrl="https:///hooks"), ["webhookUrl"]),
    "webhook with credentials": (create_body(webhookUrl="https://user:pw@93.184.215.14/x"), ["webhookUrl"]),
    "webhook over 2048 characters": (create_body(webhookUrl=LONG_URL), ["webhookUrl"]),
    "webhook on loopback": (create_body(webhookUrl="http://127.0.0.1:9/x"), ["webhookUrl"]),
    "webhook on a private network": (create_body(webhookUrl="https://10.0.0.1/x"), ["webhookUrl"]),
    "webhook on the metadata address": (create_body(webhookUrl="http://169.254.169.254/latest"), ["webhookUrl"]),
    "webhook on localhost": (create_body(webhookUrl="http://localhost/"), ["webhookUrl"]),
    "webhook on IPv6 loopback": (create_body(webhookUrl="http://[::1]/x"), ["webhookUrl"]),
    "webhookUrl not a string": (create_body(webhookUrl=5), ["webhookUrl"]),
    "everything at once": (
        create_body(
            inputs={"limit": "x", "priority": "urgent"}, secrets={"1BAD": "x"}, intervalSeconds=0,
            webhookUrl="http://10.0.0.1/", backfillSince="soon",
        ),
        ["inputs.projectId", "inputs.priority", "inputs.limit", 'secrets["1BAD"]', "intervalSeconds",
         "backfillSince", "webhookUrl"],
    ),
}


@pytest.mark.parametrize("body, fields", list(CASES.values()), ids=list(CASES))
async def test_a_bad_create_body_is_one_400_naming_every_field(client, tenant, body, fields):
    trigger_id = await create_trigger(client, tenant)
    response = await client.post(subscriptions_path("", tenant.integration_id, trigger_id), json=body, headers=tenant.auth)
    problem = assert_problem(response, 400, "validation_error")
    assert sorted(error_fields(response)) == sorted(fields), problem
    assert await listed(client, tenant, trigger_id) == []


async def test_messages_never_repeat_a_submitted_secret_or_password(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    body = create_body(inputs={**INPUTS, "apiKey": 12345678, "limit": "pw-in-wrong-field"}, secrets={"bad name": "s3cr3t-v"})
    response = await client.post(subscriptions_path("", tenant.integration_id, trigger_id), json=body, headers=tenant.auth)
    assert_problem(response, 400, "validation_error")
    assert "12345678" not in response.text and "pw-in-wrong-field" not in response.text and "s3cr3t-v" not in response.text


async def test_the_webhook_path_is_not_repeated_in_the_message(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    body = create_body(webhookUrl="https://10.0.0.1/hooks/token-abc123?key=q-9z")
    response = await client.post(subscriptions_path("", tenant.integration_id, trigger_id), json=body, headers=tenant.auth)
    assert_problem(response, 400, "validation_error")
    assert "token-abc123" not in response.text and "q-9z" not in response.text


async def test_a_webhook_trigger_cannot_be_subscribed_to(client, tenant, base):
    trigger_id = await create_trigger(client, tenant, {"name": "Pushed", "inputFields": [{"label": "Project ID"}]})
    response = await client.post(
        subscriptions_path(base, tenant.integration_id, trigger_id), json=create_body(inputs={}), headers=tenant.auth
    )
    assert_problem(response, 400, "validation_error")
    assert error_fields(response) == ["pollingCode"]
    assert await listed(client, tenant, trigger_id) == []


async def test_not_json_and_not_an_object_are_refused(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    path = subscriptions_path("", tenant.integration_id, trigger_id)
    response = await client.post(path, content=b"[]", headers={**tenant.auth, "content-type": "application/json"})
    assert response.status_code == 400, response.text
    response = await client.post(path, content=b"{", headers={**tenant.auth, "content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert await listed(client, tenant, trigger_id) == []

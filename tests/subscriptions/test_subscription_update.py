"""PATCH of a subscription: status changes, a read sent back as it is, inputs, secrets, URL, interval."""

import json
from typing import Any

import pytest

from support.helpers import assert_problem, error_fields
from support.subscriptions import (
    INPUTS,
    PASSWORD_VALUE,
    WEBHOOK,
    create_trigger,
    fetched,
    force_status,
    stored_row,
    stored_secret_rows,
    subscribe,
    subscription_path,
)


async def _setup(client, tenant, **changes: Any) -> tuple[str, dict[str, Any]]:
    trigger_id = await create_trigger(client, tenant)
    created = await subscribe(client, tenant, trigger_id, **changes)
    return trigger_id, created["subscription"]


async def _patch(client, tenant, trigger_id: str, sub_id: str, body: Any, base: str = ""):
    return await client.patch(subscription_path(base, tenant.integration_id, trigger_id, sub_id), json=body,
                              headers=tenant.auth)


def _sealed(row: dict[str, Any]) -> dict[str, str]:
    value = row["sealed_inputs"]
    return json.loads(value) if isinstance(value, str) else value


async def test_pause_then_resume(client, tenant, base):
    trigger_id, sub = await _setup(client, tenant)
    paused = await _patch(client, tenant, trigger_id, sub["id"], {"status": "paused"}, base)
    assert paused.status_code == 200, paused.text
    assert set(paused.json()) == {"subscription"}
    body = paused.json()["subscription"]
    assert (body["status"], body["nextPollAt"], body["pausedReason"]) == ("paused", None, None)
    assert await fetched(client, tenant, trigger_id, sub["id"]) == body
    resumed = await _patch(client, tenant, trigger_id, sub["id"], {"status": "active"}, base)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["subscription"]["status"] == "active"
    assert resumed.json()["subscription"]["nextPollAt"] is not None


@pytest.mark.parametrize("status", ["active", "paused"])
async def test_the_current_status_is_accepted(client, tenant, status):
    trigger_id, sub = await _setup(client, tenant)
    if status == "paused":
        await _patch(client, tenant, trigger_id, sub["id"], {"status": "paused"})
    response = await _patch(client, tenant, trigger_id, sub["id"], {"status": status})
    assert response.status_code == 200, response.text
    assert response.json()["subscription"]["status"] == status


@pytest.mark.parametrize("status", ["disabled", "paused_errors", "stopped", 1])
async def test_other_statuses_cannot_be_asked_for(client, tenant, status):
    trigger_id, sub = await _setup(client, tenant)
    response = await _patch(client, tenant, trigger_id, sub["id"], {"status": status})
    assert_problem(response, 400, "validation_error")
    assert error_fields(response) == ["status"]
    assert await fetched(client, tenant, trigger_id, sub["id"]) == sub


async def test_a_subscription_as_read_is_accepted_back_unchanged(app, client, tenant, base):
    trigger_id, sub = await _setup(
        client, tenant, inputs={**INPUTS, "apiKey": PASSWORD_VALUE}, secrets={"API_TOKEN": "tok-1"}
    )
    before_row = await stored_row(app, sub["id"])
    before_secrets = await stored_secret_rows(app, sub["id"])
    read = await fetched(client, tenant, trigger_id, sub["id"])
    response = await _patch(client, tenant, trigger_id, sub["id"], read, base)
    assert response.status_code == 200, response.text
    after = response.json()["subscription"]
    assert {k: v for k, v in after.items() if k != "updatedAt"} == {k: v for k, v in read.items() if k != "updatedAt"}
    after_row = await stored_row(app, sub["id"])
    assert after_row is not None and before_row is not None
    assert _sealed(after_row) == _sealed(before_row)  # the same token: the password was kept
    assert await stored_secret_rows(app, sub["id"]) == before_secrets


async def test_kept_without_a_stored_value_is_400(client, tenant):
    trigger_id, sub = await _setup(client, tenant)
    response = await _patch(client, tenant, trigger_id, sub["id"], {"inputs": {**INPUTS, "apiKey": {"set": True}}})
    assert_problem(response, 400, "validation_error")
    assert error_fields(response) == ["inputs.apiKey"]
    assert await fetched(client, tenant, trigger_id, sub["id"]) == sub


async def test_a_new_password_replaces_the_stored_one(app, client, tenant):
    trigger_id, sub = await _setup(client, tenant, inputs={**INPUTS, "apiKey": PASSWORD_VALUE})
    before = _sealed(await stored_row(app, sub["id"]) or {})
    response = await _patch(client, tenant, trigger_id, sub["id"], {"inputs": {**INPUTS, "apiKey": "new-pw"}})
    assert response.status_code == 200, response.text
    assert response.json()["subscription"]["inputs"]["apiKey"] == {"set": True}
    after = _sealed(await stored_row(app, sub["id"]) or {})
    assert after["apiKey"] != before["apiKey"]


async def test_inputs_replace_them_all(app, client, tenant):
    trigger_id, sub = await _setup(client, tenant, inputs={**INPUTS, "apiKey": PASSWORD_VALUE})
    response = await _patch(client, tenant, trigger_id, sub["id"], {"inputs": {"projectId": "proj_9"}})
    assert response.status_code == 200, response.text
    assert response.json()["subscription"]["inputs"] == {"projectId": "proj_9"}
    assert _sealed(await stored_row(app, sub["id"]) or {}) == {}
    assert (await fetched(client, tenant, trigger_id, sub["id"]))["inputs"] == {"projectId": "proj_9"}


async def test_secrets_merge_and_the_list_form_is_ignored(client, tenant):
    trigger_id, sub = await _setup(client, tenant, secrets={"A": "1", "B": "2"})
    response = await _patch(client, tenant, trigger_id, sub["id"], {"secrets": {"A": None, "C": "3", "B": "22"}})
    assert response.status_code == 200, response.text
    assert [s["name"] for s in response.json()["subscription"]["secrets"]] == ["B", "C"]
    listed_form = [{"name": "Z", "updatedAt": "2020-01-01T00:00:00Z"}]
    again = await _patch(client, tenant, trigger_id, sub["id"], {"secrets": listed_form})
    assert again.status_code == 200, again.text
    assert [s["name"] for s in again.json()["subscription"]["secrets"]] == ["B", "C"]
    deleting_absent = await _patch(client, tenant, trigger_id, sub["id"], {"secrets": {"NEVER": None}})
    assert [s["name"] for s in deleting_absent.json()["subscription"]["secrets"]] == ["B", "C"]


async def test_secrets_over_fifty_once_merged_are_400_and_nothing_changes(client, tenant):
    trigger_id, sub = await _setup(client, tenant, secrets={f"S{i}": "v" for i in range(50)})
    response = await _patch(client, tenant, trigger_id, sub["id"], {"secrets": {"ONE_MORE": "v"}})
    assert_problem(response, 400, "validation_error")
    assert error_fields(response) == ["secrets"]
    assert len((await fetched(client, tenant, trigger_id, sub["id"]))["secrets"]) == 50
    swapped = await _patch(client, tenant, trigger_id, sub["id"], {"secrets": {"S0": None, "ONE_MORE": "v"}})
    assert swapped.status_code == 200, swapped.text
    assert len(swapped.json()["subscription"]["secrets"]) == 50


async def test_webhook_and_interval_change(client, tenant, base):
    trigger_id, sub = await _setup(client, tenant)
    body = {"webhookUrl": "https://93.184.215.14/other", "intervalSeconds": 60}
    response = await _patch(client, tenant, trigger_id, sub["id"], body, base)
    assert response.status_code == 200, response.text
    out = response.json()["subscription"]
    assert (out["webhookUrl"], out["intervalSeconds"]) == (body["webhookUrl"], 60)


BAD_PATCHES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "private webhook": ({"webhookUrl": "http://10.0.0.1/x"}, ["webhookUrl"]),
    "loopback webhook": ({"webhookUrl": "http://127.0.0.1:9/x"}, ["webhookUrl"]),
    "ftp webhook": ({"webhookUrl": "ftp://93.184.215.14/x"}, ["webhookUrl"]),
    "interval too low": ({"intervalSeconds": 0}, ["intervalSeconds"]),
    "interval too high": ({"intervalSeconds": 86_401}, ["intervalSeconds"]),
    "interval a string": ({"intervalSeconds": "60"}, ["intervalSeconds"]),
    "bad inputs": ({"inputs": {"priority": "urgent"}}, ["inputs.projectId", "inputs.priority"]),
    "bad secret": ({"secrets": {"1X": "v"}}, ['secrets["1X"]']),
    "unknown field": ({"colour": "red"}, ["colour"]),
    "several": (
        {"webhookUrl": "http://10.0.0.1/x", "intervalSeconds": 0, "inputs": {}, "status": "disabled"},
        ["webhookUrl", "intervalSeconds", "inputs.projectId", "status"],
    ),
    "good with bad": ({"webhookUrl": "https://93.184.215.14/new", "status": "paused", "intervalSeconds": 0},
                      ["intervalSeconds"]),
}


@pytest.mark.parametrize("body, fields", list(BAD_PATCHES.values()), ids=list(BAD_PATCHES))
async def test_a_bad_patch_is_400_and_writes_nothing(client, tenant, body, fields):
    trigger_id, sub = await _setup(client, tenant, secrets={"KEEP": "v"})
    response = await _patch(client, tenant, trigger_id, sub["id"], body)
    assert_problem(response, 400, "validation_error")
    assert sorted(error_fields(response)) == sorted(fields)
    assert await fetched(client, tenant, trigger_id, sub["id"]) == sub


async def test_an_empty_patch_changes_nothing_but_updated_at(client, tenant):
    trigger_id, sub = await _setup(client, tenant)
    response = await _patch(client, tenant, trigger_id, sub["id"], {})
    assert response.status_code == 200, response.text
    out = response.json()["subscription"]
    assert {k: v for k, v in out.items() if k != "updatedAt"} == {k: v for k, v in sub.items() if k != "updatedAt"}


async def test_read_only_fields_are_ignored(client, tenant):
    trigger_id, sub = await _setup(client, tenant)
    body = {"id": "x", "consecutiveFailures": 9, "pausedReason": "nope", "webhookUrl": WEBHOOK}
    response = await _patch(client, tenant, trigger_id, sub["id"], body)
    assert response.status_code == 200, response.text
    out = response.json()["subscription"]
    assert (out["id"], out["consecutiveFailures"], out["pausedReason"]) == (sub["id"], 0, None)


async def test_a_disabled_subscription_sent_back_stays_disabled_until_resumed(app, client, tenant):
    trigger_id, sub = await _setup(client, tenant)
    await force_status(app, sub["id"], "disabled")
    read = await fetched(client, tenant, trigger_id, sub["id"])
    assert (read["status"], read["nextPollAt"]) == ("disabled", None)
    response = await _patch(client, tenant, trigger_id, sub["id"], read)
    assert response.status_code == 200, response.text
    assert response.json()["subscription"]["status"] == "disabled"
    refused = await _patch(client, tenant, trigger_id, sub["id"], {"status": "paused_errors"})
    assert error_fields(refused) == ["status"]
    resumed = await _patch(client, tenant, trigger_id, sub["id"], {"status": "active"})
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["subscription"]["status"] == "active"

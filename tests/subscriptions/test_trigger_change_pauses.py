"""A trigger PUT whose input fields no longer fit an active subscription pauses it (`paused_errors`)."""

import copy
import uuid
from typing import Any

from support.helpers import assert_problem, error_fields, trigger_path
from support.subscriptions import INPUTS, PASSWORD_VALUE, TRIGGER, create_trigger, fetched, subscribe, subscription_path

WEBHOOK_2 = "https://93.184.215.14/hooks/second"


def _with_team_required() -> dict[str, Any]:
    body = copy.deepcopy(TRIGGER)
    body["name"] = f"Changed {uuid.uuid4().hex[:8]}"
    body["inputFields"].append({"label": "Team", "type": "TEXT", "required": True})
    return body


async def _put(client, tenant, trigger_id: str, body: dict[str, Any], base: str = ""):
    response = await client.put(trigger_path(base, tenant.integration_id, trigger_id), json=body, headers=tenant.auth)
    assert response.status_code == 200, response.text
    return response


async def _patch(client, tenant, trigger_id: str, sub_id: str, body: dict[str, Any], base: str = ""):
    return await client.patch(subscription_path(base, tenant.integration_id, trigger_id, sub_id), json=body,
                              headers=tenant.auth)


async def test_a_new_required_field_pauses_active_subscriptions_only(client, tenant, base):
    trigger_id = await create_trigger(client, tenant)
    active = (await subscribe(client, tenant, trigger_id, base))["subscription"]
    paused = (await subscribe(client, tenant, trigger_id, base))["subscription"]
    assert (await _patch(client, tenant, trigger_id, paused["id"], {"status": "paused"})).status_code == 200
    await _put(client, tenant, trigger_id, _with_team_required(), base)

    now_active = await fetched(client, tenant, trigger_id, active["id"])
    assert (now_active["status"], now_active["pausedReason"], now_active["nextPollAt"]) == (
        "paused_errors", "inputs_invalid", None,
    )
    assert now_active["lastError"]["code"] == "inputs_invalid"
    still_paused = await fetched(client, tenant, trigger_id, paused["id"])
    assert (still_paused["status"], still_paused["pausedReason"]) == ("paused", None)


async def test_resuming_checks_the_inputs_against_the_changed_fields(client, tenant, base):
    trigger_id = await create_trigger(client, tenant)
    sub = (await subscribe(client, tenant, trigger_id, base))["subscription"]
    await _put(client, tenant, trigger_id, _with_team_required(), base)
    stuck = await fetched(client, tenant, trigger_id, sub["id"])

    refused = await _patch(client, tenant, trigger_id, sub["id"], {"status": "active"}, base)
    assert_problem(refused, 400, "validation_error")
    assert error_fields(refused) == ["inputs.team"]
    assert await fetched(client, tenant, trigger_id, sub["id"]) == stuck

    fixed = await _patch(client, tenant, trigger_id, sub["id"], {"inputs": {**INPUTS, "team": "core"}, "status": "active"},
                         base)
    assert fixed.status_code == 200, fixed.text
    out = fixed.json()["subscription"]
    assert (out["status"], out["pausedReason"], out["consecutiveFailures"]) == ("active", None, 0)
    assert out["inputs"] == {**INPUTS, "team": "core"}
    assert out["nextPollAt"] is not None


async def test_new_inputs_alone_do_not_resume(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    sub = (await subscribe(client, tenant, trigger_id))["subscription"]
    await _put(client, tenant, trigger_id, _with_team_required())
    response = await _patch(client, tenant, trigger_id, sub["id"], {"inputs": {**INPUTS, "team": "core"}})
    assert response.status_code == 200, response.text
    assert response.json()["subscription"]["status"] == "paused_errors"
    resumed = await _patch(client, tenant, trigger_id, sub["id"], {"status": "active"})
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["subscription"]["status"] == "active"


async def test_a_paused_subscription_is_checked_when_resumed(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    sub = (await subscribe(client, tenant, trigger_id))["subscription"]
    await _patch(client, tenant, trigger_id, sub["id"], {"status": "paused"})
    await _put(client, tenant, trigger_id, _with_team_required())
    refused = await _patch(client, tenant, trigger_id, sub["id"], {"status": "active"})
    assert_problem(refused, 400, "validation_error")
    assert error_fields(refused) == ["inputs.team"]
    assert (await fetched(client, tenant, trigger_id, sub["id"]))["status"] == "paused"


async def test_a_change_that_still_fits_keeps_subscriptions_active(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    sub = (await subscribe(client, tenant, trigger_id, inputs={**INPUTS, "apiKey": PASSWORD_VALUE}))["subscription"]
    body = copy.deepcopy(TRIGGER)
    body["name"] = f"Optional added {uuid.uuid4().hex[:8]}"
    body["inputFields"].append({"label": "Team", "type": "TEXT", "required": False})
    body["pollingCode"] = "return [{id: 1}];"
    await _put(client, tenant, trigger_id, body)
    after = await fetched(client, tenant, trigger_id, sub["id"])
    assert (after["status"], after["pausedReason"]) == ("active", None)
    assert after["inputs"]["apiKey"] == {"set": True}


async def test_a_removed_field_or_an_option_taken_away_pauses(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    sub = (await subscribe(client, tenant, trigger_id))["subscription"]
    body = copy.deepcopy(TRIGGER)
    body["name"] = f"Narrowed {uuid.uuid4().hex[:8]}"
    body["inputFields"][1]["options"] = [{"label": "Low", "value": "low"}]
    await _put(client, tenant, trigger_id, body)
    after = await fetched(client, tenant, trigger_id, sub["id"])
    assert (after["status"], after["pausedReason"]) == ("paused_errors", "inputs_invalid")
    refused = await _patch(client, tenant, trigger_id, sub["id"], {"status": "active"})
    assert error_fields(refused) == ["inputs.priority"]


async def test_a_paused_errors_subscription_accepts_its_status_and_may_be_paused(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    sub = (await subscribe(client, tenant, trigger_id))["subscription"]
    await _put(client, tenant, trigger_id, _with_team_required())
    same = await _patch(client, tenant, trigger_id, sub["id"], {"status": "paused_errors", "webhookUrl": WEBHOOK_2})
    assert same.status_code == 200, same.text
    assert (same.json()["subscription"]["status"], same.json()["subscription"]["webhookUrl"]) == ("paused_errors", WEBHOOK_2)
    paused = await _patch(client, tenant, trigger_id, sub["id"], {"status": "paused"})
    assert paused.status_code == 200, paused.text
    assert (paused.json()["subscription"]["status"], paused.json()["subscription"]["pausedReason"]) == ("paused", None)


async def test_a_paused_subscription_read_and_sent_back_keeps_its_inputs(client, tenant):
    trigger_id = await create_trigger(client, tenant)
    sub = (await subscribe(client, tenant, trigger_id, inputs={**INPUTS, "apiKey": PASSWORD_VALUE}))["subscription"]
    await _put(client, tenant, trigger_id, _with_team_required())
    read = await fetched(client, tenant, trigger_id, sub["id"])

    # Its inputs no longer fit the trigger, but sent back unchanged they are no change to check.
    sent_back = await _patch(client, tenant, trigger_id, sub["id"], {**read, "webhookUrl": WEBHOOK_2})
    assert sent_back.status_code == 200, sent_back.text
    after = sent_back.json()["subscription"]
    assert (after["status"], after["webhookUrl"], after["inputs"]) == ("paused_errors", WEBHOOK_2, read["inputs"])

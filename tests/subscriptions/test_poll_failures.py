"""Failed polls (RUNTIME.md, "Polling", "Failures"): lastPollTime held across them, invalid output
and the auto-pause, inputs that no longer fit, ids that are not ids, timeouts, and secrets that
the code throws back."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text

from odeus_triggers.triggers.hooks import TriggerHooks

from support.helpers import client_of, make_tenant, started_app
from support.polls import COUNTER_CODE, COUNTER_FIELDS, counter_subscription, states

THROWS = "const x = 1;\nthrow new Error('the tracker is down');"


async def test_lastPollTime_is_held_across_failures_and_the_outage_is_covered(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, inputs={"count": 2})
    seed = await sub.poll()
    await sub.set_code(THROWS)
    failed = await sub.poll()
    assert (failed["outcome"], failed["new"]) == ("error", 0)
    assert failed["error"]["code"] == "code_error" and failed["error"]["line"] == 2
    assert "the tracker is down" in failed["error"]["message"]
    stuck = await sub.read()
    assert (stuck["lastPollTime"], stuck["consecutiveFailures"], stuck["lastError"]) == (
        seed["startedAt"], 1, failed["error"],
    )
    assert stuck["status"] == "active"

    await sub.set_count(4)  # created during the outage
    assert (await sub.poll())["outcome"] == "error"
    assert (await sub.read())["consecutiveFailures"] == 2

    await sub.set_code(COUNTER_CODE)
    fixed = await sub.poll()
    assert (fixed["outcome"], fixed["new"]) == ("ok", 2)
    events = await sub.events()
    assert states(events) == {"item-1": "seeded", "item-2": "seeded", "item-3": "pending", "item-4": "pending"}
    assert events["item-3"]["data"]["lastPollTime"] == seed["startedAt"]
    healthy = await sub.read()
    assert (healthy["lastPollTime"], healthy["consecutiveFailures"], healthy["lastError"]) == (
        fixed["startedAt"], 0, None,
    )
    # The history keeps the errors.
    assert [p["outcome"] for p in (await sub.history())["polls"]] == ["ok", "error", "error", "seeded"]


async def test_three_invalid_outputs_pause_and_resuming_resets_without_reseeding(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, inputs={"count": 1})
    assert (await sub.poll())["outcome"] == "seeded"
    for code, index in (("return [{ title: 'no id' }];", 0), ("return [{ id: 'a' }, { id: true }];", 1),
                        ("return { id: 1 };", None)):
        await sub.set_code(code)
        run = await sub.poll()
        assert (run["outcome"], run["error"]["code"]) == ("invalid_output", "invalid_output"), run
        if index is not None:
            assert f"item {index}" in run["error"]["message"]
    paused = await sub.read()
    assert (paused["status"], paused["pausedReason"], paused["consecutiveFailures"]) == (
        "paused_errors", "invalid_output", 3,
    )
    assert paused["nextPollAt"] is None
    # Poll-now still runs on it, and leaves it paused.
    assert (await sub.poll())["outcome"] == "invalid_output"
    assert (await sub.read())["status"] == "paused_errors"

    await sub.set_code(COUNTER_CODE)
    await sub.set_count(2)
    resumed = await sub.patch({"status": "active"})
    assert (resumed["status"], resumed["pausedReason"], resumed["consecutiveFailures"]) == ("active", None, 0)
    run = await sub.poll()
    assert (run["outcome"], run["new"]) == ("ok", 1)
    assert states(await sub.events()) == {"item-1": "seeded", "item-2": "pending"}


async def test_an_id_of_256_characters_is_invalid_output_and_255_is_fine(app, client, tenant):
    code = "return [{ id: 'x'.repeat(inputs.count) }];"
    sub = await counter_subscription(client, app, tenant, code=code, inputs={"count": 255})
    assert (await sub.poll())["outcome"] == "seeded"
    await sub.set_count(256)
    run = await sub.poll()
    assert (run["outcome"], run["error"]["code"], run["new"]) == ("invalid_output", "invalid_output", 0)
    assert len(await sub.events()) == 1


REQUIRED_TEAM = [*COUNTER_FIELDS, {"label": "Team", "type": "TEXT", "required": True}]


async def test_inputs_that_no_longer_fit_are_an_error_on_the_next_poll(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, inputs={"count": 1})
    await sub.poll()
    await sub.set_code(COUNTER_CODE, REQUIRED_TEAM)  # its hook pauses it at once
    assert ((await sub.read())["status"], (await sub.read())["pausedReason"]) == ("paused_errors", "inputs_invalid")
    run = await sub.poll()
    assert (run["outcome"], run["error"]["code"]) == ("error", "inputs_invalid")
    assert "team" in run["error"]["message"]
    assert (await sub.read())["status"] == "paused_errors"


@contextmanager
def no_trigger_hooks(app: Any) -> Iterator[None]:
    """As if the hook that pauses on a trigger update had failed: the next poll must still catch it."""
    hooks = app.state.trigger_hooks
    app.state.trigger_hooks = TriggerHooks()
    try:
        yield
    finally:
        app.state.trigger_hooks = hooks


async def test_inputs_that_no_longer_fit_pause_an_active_subscription_on_its_next_poll(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, inputs={"count": 1})
    await sub.poll()
    with no_trigger_hooks(app):
        await sub.set_code(COUNTER_CODE, REQUIRED_TEAM)
    assert (await sub.read())["status"] == "active"
    run = await sub.poll()
    assert (run["outcome"], run["error"]["code"]) == ("error", "inputs_invalid")
    after = await sub.read()
    assert (after["status"], after["pausedReason"], after["lastError"]["code"]) == (
        "paused_errors", "inputs_invalid", "inputs_invalid",
    )


async def test_code_that_runs_too_long_is_a_timeout(settings):
    async with started_app(settings, polling_timeout_seconds=1) as own_app, client_of(own_app) as own_client:
        tenant = await make_tenant(own_app)
        sub = await counter_subscription(own_client, own_app, tenant, inputs={"count": 1})
        seed = await sub.poll()
        await sub.set_code("while (true) {}")
        run = await sub.poll()
        assert (run["outcome"], run["error"]["code"]) == ("timeout", "timeout")
        after = await sub.read()
        assert (after["lastPollTime"], after["consecutiveFailures"]) == (seed["startedAt"], 1)


SECRET = "s3cr3t-token-9a7f"
PASSWORD = "pw-value-51c2e8"
LEAKS = "throw new Error('token ' + secrets.API_TOKEN + ' password ' + inputs.apiKey);"


async def test_secrets_the_code_throws_are_redacted_everywhere(app, client, tenant):
    fields = [{"label": "Api Key", "type": "PASSWORD", "required": False}]
    sub = await counter_subscription(
        client, app, tenant, code=LEAKS, fields=fields, inputs={"apiKey": PASSWORD}, secrets={"API_TOKEN": SECRET}
    )
    response = await sub.poll_response()
    assert response.status_code == 200, response.text
    run = response.json()["poll"]
    assert run["outcome"] == "error"
    assert run["error"]["message"].count("[redacted]") == 2
    history = await client.get(sub.path + "/polls", headers=tenant.auth)
    read = await client.get(sub.path, headers=tenant.auth)
    async with app.state.engine.connect() as conn:
        stored = [str(row) for row in (await conn.execute(text("SELECT error FROM poll_runs"))).all()]
        state = [str(row) for row in (await conn.execute(text("SELECT last_error FROM subscriptions"))).all()]
    for shown in (response.text, history.text, read.text, *stored, *state):
        assert SECRET not in shown and PASSWORD not in shown
    assert any("[redacted]" in s for s in stored)

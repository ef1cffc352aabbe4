"""POST …/subscriptions/{id}/poll and GET …/polls: the routes themselves (answers, conflicts,
scope, access, pagination); the polling semantics are in test_poll_semantics.py and
test_poll_failures.py."""

import asyncio
import re
import uuid
from typing import Any

from support.helpers import assert_problem, client_of, make_tenant, started_app
from support.polls import Polled, counter_subscription
from support.subscriptions import bump_lease_epoch, force_status, subscription_path

SLOW_CODE = "const t = Date.now(); while (Date.now() - t < 1500) {} return [];"


async def test_poll_now_answers_the_run_and_counts_like_a_scheduled_poll(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, inputs={"count": 2})
    before = await sub.read()
    run = await sub.poll()
    assert set(run) == {"id", "startedAt", "finishedAt", "outcome", "returned", "new", "capped", "durationMs", "error"}
    assert (run["outcome"], run["returned"], run["new"], run["capped"], run["error"]) == ("seeded", 2, 0, False, None)
    assert run["startedAt"] <= run["finishedAt"] and run["durationMs"] >= 0
    after = await sub.read()
    assert after["status"] == "active"
    assert after["lastPollTime"] == run["startedAt"]
    assert after["lastPolledAt"] is not None and after["lastSucceededAt"] is not None
    assert after["nextPollAt"] > before["nextPollAt"]  # due again one interval later
    assert (await sub.history())["polls"] == [run]


def _seeded_polls(metrics: str) -> float:
    found = re.search(r'^odeus_polls_total\{outcome="seeded"\} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


async def test_poll_now_is_counted_in_the_poll_metrics(app, client, tenant):
    sub = await counter_subscription(client, app, tenant)
    before = _seeded_polls((await client.get("/metrics")).text)
    await sub.poll()
    assert _seeded_polls((await client.get("/metrics")).text) == before + 1


async def test_a_paused_subscription_can_be_polled_now_and_stays_paused(app, client, tenant, base):
    sub = await counter_subscription(client, app, tenant, inputs={"count": 1})
    await sub.patch({"status": "paused"})
    response = await client.post(
        subscription_path(base, tenant.integration_id, sub.trigger_id, sub.id) + "/poll", headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["poll"]["outcome"] == "seeded"
    assert (await sub.read())["status"] == "paused"


async def test_a_disabled_subscription_is_409(app, client, tenant):
    sub = await counter_subscription(client, app, tenant)
    await force_status(app, sub.id, "disabled")
    assert_problem(await sub.poll_response(), 409, "subscription_disabled")
    assert (await sub.history())["polls"] == []


async def test_a_poll_in_progress_is_409(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, code=SLOW_CODE, fields=[])
    first, second = await asyncio.gather(sub.poll_response(), _later(sub, 0.5))
    assert first.status_code == 200, first.text
    assert_problem(second, 409, "poll_in_progress")
    assert len((await sub.history())["polls"]) == 1
    # The lease ends with the poll: the next one runs.
    assert (await sub.poll())["outcome"] == "ok"


async def test_a_subscription_deleted_while_its_poll_runs_is_404_and_nothing_is_written(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, code=SLOW_CODE.replace("[]", "[{ id: 1 }]"), fields=[])

    async def delete_later() -> Any:
        await asyncio.sleep(0.5)
        return await client.delete(sub.path, headers=tenant.auth)

    polled, deleted = await asyncio.gather(sub.poll_response(), delete_later())
    assert deleted.status_code == 200, deleted.text
    assert_problem(polled, 404, "subscription_not_found")
    assert await sub.events() == {}


async def _later(sub: Polled, delay: float) -> Any:
    await asyncio.sleep(delay)
    return await sub.poll_response()


async def test_the_subscription_must_be_of_the_trigger_and_integration_in_the_path(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, inputs={"count": 1})
    other = await counter_subscription(client, app, tenant)
    wrong_trigger = subscription_path("", tenant.integration_id, other.trigger_id, sub.id)
    for path in (wrong_trigger, subscription_path("", tenant.integration_id, sub.trigger_id, str(uuid.uuid4()))):
        assert_problem(await client.post(path + "/poll", headers=tenant.auth), 404, "subscription_not_found")
        assert_problem(await client.get(path + "/polls", headers=tenant.auth), 404, "subscription_not_found")
    # Nothing was claimed or run through the wrong path.
    assert (await sub.history())["polls"] == []
    assert (await sub.poll())["outcome"] == "seeded"


async def test_another_workspace_gets_403(app, client, tenant):
    sub = await counter_subscription(client, app, tenant)
    stranger = await make_tenant(app)
    assert_problem(await client.post(sub.path + "/poll", headers=stranger.auth), 403, "integration_forbidden")
    assert_problem(await client.get(sub.path + "/polls", headers=stranger.auth), 403, "integration_forbidden")
    assert (await sub.history())["polls"] == []


async def test_the_history_is_newest_first_a_page_at_a_time(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, inputs={"count": 1})
    runs = [await sub.poll() for _ in range(5)]
    newest_first = list(reversed(runs))
    seen, cursor, pages = [], None, 0
    while True:
        page = await sub.history(limit=2, **({"cursor": cursor} if cursor else {}))
        seen += page["polls"]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert (pages, seen) == (3, newest_first)
    assert (await sub.history())["polls"] == newest_first
    assert_problem(await client.get(sub.path + "/polls", params={"cursor": "nope"}, headers=tenant.auth), 400,
                   "validation_error")


async def test_a_sandbox_that_cannot_run_it_is_503_and_counts_nothing(settings):
    async with started_app(settings) as own_app, client_of(own_app) as own_client:
        tenant = await make_tenant(own_app)
        sub = await counter_subscription(own_client, own_app, tenant, inputs={"count": 1})
        before = await sub.read()
        await own_app.state.sandbox.close()
        response = await sub.poll_response()
        assert_problem(response, 503, "service_unavailable")
        assert int(response.headers["retry-after"]) > 0
        after = await sub.read()
        assert (after["lastPollTime"], after["lastPolledAt"], after["consecutiveFailures"]) == (None, None, 0)
        assert (after["status"], before["status"]) == ("active", "active")
        assert (await sub.history())["polls"] == []
        # The lease was given back: not a 409.
        assert_problem(await sub.poll_response(), 503, "service_unavailable")


async def test_a_poll_whose_lease_was_taken_meanwhile_writes_only_a_lease_lost_run(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, code=SLOW_CODE.replace("[]", "[{ id: 1 }]"), fields=[])
    before = await sub.read()

    async def take_the_lease_later() -> None:
        # What another worker's claim does once a lease has run out: a new epoch fences the old poll.
        await asyncio.sleep(0.5)
        await bump_lease_epoch(app, sub.id)

    polled, _ = await asyncio.gather(sub.poll(), take_the_lease_later())
    assert (polled["outcome"], polled["returned"], polled["new"]) == ("lease_lost", 1, 0)
    after = await sub.read()
    for field in ("lastPollTime", "lastPolledAt", "lastSucceededAt", "consecutiveFailures", "status"):
        assert after[field] == before[field], field
    assert await sub.events() == {}  # not even seeded: the fenced poll wrote no event
    assert [p["outcome"] for p in (await sub.history())["polls"]] == ["lease_lost"]

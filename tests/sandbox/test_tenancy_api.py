"""One tenant's polling code must not stall another tenant: attacks from the abuse review, each
replayed through HTTP against a real `serve` process, while a second tenant and `/healthz` are
watched from outside. Bounds are generous ("under 1 s"), never milliseconds."""

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.helpers import Tenant, create_path, make_tenant, run_path, served

WALL_TIME_S = 3
# Healthy answers take milliseconds; a stalled event loop takes the attack's whole duration.
PROMPT_S = 1.0

# The abuse review's flood: toJSON decides what the prelude's step report says, 500 forged
# fetches per step, then a promise that never settles.
FLOOD = """
let n = 0;
Object.prototype.toJSON = function () {
  if (Array.isArray(this) || Object.getPrototypeOf(this) === null) return this;
  const o = Object.create(null);
  o.done = false; o.timer = null; o.fetches = [];
  for (let i = 0; i < 500; i++) {
    const f = Object.create(null);
    f.id = ++n; f.url = 'https://example.com/'; f.method = 'GET'; f.headers = []; f.body = null; f.redirect = 'follow';
    o.fetches.push(f);
  }
  return o;
};
await new Promise(() => {});
"""
# The same aim through the other intrinsics a report could be built with.
FORGED_JOIN = """
const forged = '{"done":false,"timer":null,"fetches":[' +
  Array.from({length: 500}, (_, i) => '{"id":' + (i + 1) +
    ',"url":"https://example.com/","method":"GET","headers":[],"body":null,"redirect":"follow"}').join(',') + ']}';
const join = Array.prototype.join;
Array.prototype.join = function (sep) { return this.length > 3 ? forged : join.call(this, sep); };
Object.defineProperty(Array.prototype, '0', { get() { return forged; }, set(v) {}, configurable: true });
await new Promise(() => {});
"""


@pytest.fixture(scope="module")
def service(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODEUS_") and k != "REDIS_URL"}
    env.update(
        DATABASE_URL=database_url,
        ODEUS_LOG_LEVEL="WARNING",
        ODEUS_RATE_LIMIT="100000/minute",
        ODEUS_RATE_LIMIT_UNAUTHENTICATED="100000/minute",
        ODEUS_POLLING_TIMEOUT_SECONDS=str(WALL_TIME_S),
        ODEUS_POLLING_WORKERS="2",
    )
    with served(env, tmp_path_factory.mktemp("tenancy") / "service.log") as origin:
        yield origin


async def create_trigger(http: httpx.AsyncClient, tenant: Tenant, code: str) -> httpx.Response:
    return await http.post(
        create_path("", tenant.integration_id),
        json={"name": f"T {uuid.uuid4().hex[:10]}", "pollingCode": code},
        headers=tenant.auth,
    )


async def dry_run(http: httpx.AsyncClient, tenant: Tenant, trigger_id: str) -> httpx.Response:
    return await http.post(run_path("", tenant.integration_id, trigger_id), json={}, headers=tenant.auth)



async def timed(request: Any) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = await request
    return time.monotonic() - started, response


async def watch_bystander(http: httpx.AsyncClient, bystander: Tenant, until: asyncio.Task[Any]) -> list[tuple[str, float, int]]:
    """While `until` runs: /healthz, and creates with new code by another tenant, each timed."""
    seen: list[tuple[str, float, int]] = []
    while not until.done():
        took, health = await timed(http.get("/healthz"))
        seen.append(("healthz", took, health.status_code))
        # Unique code every time, so the syntax check really goes to a sandbox worker.
        took, created = await timed(create_trigger(http, bystander, f"return [{{id: {time.monotonic_ns()}}}];"))
        seen.append(("create", took, created.status_code))
        await asyncio.sleep(0.1)
    return seen


def assert_prompt(seen: list[tuple[str, float, int]]) -> None:
    assert len(seen) >= 2, seen
    slow = [s for s in seen if s[1] >= PROMPT_S or s[2] not in (200, 201)]
    assert not slow, slow


@pytest.mark.parametrize("attack", [FLOOD, FORGED_JOIN], ids=["toJSON", "join-and-getters"])
async def test_a_forged_fetch_flood_neither_crosses_nor_stalls_anyone(app: Any, service: str, attack: str) -> None:
    attacker, bystander = await make_tenant(app), await make_tenant(app)
    async with httpx.AsyncClient(base_url=service, timeout=30, trust_env=False) as http:
        created = await create_trigger(http, attacker, attack)
        assert created.status_code == 201, created.text
        attack_run = asyncio.create_task(timed(dry_run(http, attacker, created.json()["trigger"]["id"])))
        seen = await watch_bystander(http, bystander, attack_run)
        took, result = await attack_run
    assert_prompt(seen)
    assert result.status_code == 200, result.text
    body = result.json()
    # No forged request reached the parent: the run ended as a promise nothing can settle.
    assert body["ok"] is False and "never finished" in body["error"]["message"], body
    assert took < WALL_TIME_S + PROMPT_S


async def test_one_workspace_busy_looping_cannot_fail_or_delay_another(app: Any, service: str) -> None:
    attacker, bystander = await make_tenant(app), await make_tenant(app)
    async with httpx.AsyncClient(base_url=service, timeout=30, trust_env=False) as http:
        loop = await create_trigger(http, attacker, "while (true) {}")
        assert loop.status_code == 201, loop.text
        quick = await create_trigger(http, bystander, "return [{id: 1}];")
        assert quick.status_code == 201, quick.text
        loop_id, quick_id = loop.json()["trigger"]["id"], quick.json()["trigger"]["id"]

        attack = asyncio.gather(*(dry_run(http, attacker, loop_id) for _ in range(4)))
        attack_task = asyncio.ensure_future(attack)
        await asyncio.sleep(0.3)
        seen = await watch_bystander(http, bystander, attack_task)
        # The bystander's own test runs get a worker too, while the attacker still queues.
        runs = []
        for _ in range(3):
            took, ran = await timed(dry_run(http, bystander, quick_id))
            runs.append((took, ran.status_code, ran.json().get("ok")))
        attacked = await attack_task
    assert_prompt(seen)
    assert all(status == 200 and ok is True for _, status, ok in runs), runs
    # The attacker's own runs time out one after another, or wait their turn and are told to retry.
    statuses = sorted(r.status_code for r in attacked)
    assert statuses[0] == 200 and set(statuses) <= {200, 429}, [r.text for r in attacked]
    assert all("time limit" in r.json()["error"]["message"] for r in attacked if r.status_code == 200)


async def test_uninterruptible_code_is_a_timeout_and_costs_only_its_own_workspace(app: Any, service: str) -> None:
    attacker, bystander = await make_tenant(app), await make_tenant(app)
    # QuickJS checks its interrupt between bytecodes; a backtracking regex and a Proxy prototype
    # loop spend the whole wall time inside one, so only killing the worker stops them.
    attacks = [
        "return [{id: /^(a+)+$/.test('a'.repeat(40) + 'b')}];",
        "const p = new Proxy({}, { getPrototypeOf() { return p; } }); return [{id: p instanceof Object}];",
    ]
    async with httpx.AsyncClient(base_url=service, timeout=30, trust_env=False) as http:
        quick = await create_trigger(http, bystander, "return [{id: 1}];")
        quick_id = quick.json()["trigger"]["id"]
        for code in attacks:
            created = await create_trigger(http, attacker, code)
            assert created.status_code == 201, created.text
            attack = asyncio.create_task(timed(dry_run(http, attacker, created.json()["trigger"]["id"])))
            seen = await watch_bystander(http, bystander, attack)
            took, result = await attack
            assert_prompt(seen)
            body = result.json()
            assert result.status_code == 200 and body["ok"] is False, body
            assert body["error"]["message"] == f"Polling code exceeded the {WALL_TIME_S} s time limit", body
            assert took < WALL_TIME_S + PROMPT_S
            took, after = await timed(dry_run(http, bystander, quick_id))
            assert after.status_code == 200 and after.json()["ok"] is True and took < PROMPT_S

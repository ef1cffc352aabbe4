"""Hostile polling code through the test-run route: each attack ends as a 200 with `ok: false`,
and the API answers the next run promptly. Secrets stay out of our logs and error bodies."""

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from support.helpers import Tenant, assert_problem, client_of, create_and_dry_run, make_tenant, run_path, started_app

WALL_TIME_S = 2
# A trivial run on a warm pool takes milliseconds; this leaves room for a loaded CI machine and
# for replacing a worker the previous attack got killed.
PROMPT_S = 1.5


@pytest.fixture(scope="module")
async def strict_app(settings: Any) -> AsyncIterator[Any]:
    """Default network policy, and a short wall time to keep the suite fast."""
    async with started_app(settings, polling_timeout_seconds=WALL_TIME_S) as app:
        yield app


@pytest.fixture
async def api(strict_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(strict_app) as c:
        yield c


@pytest.fixture
async def owner(strict_app: Any) -> Tenant:
    return await make_tenant(strict_app)


async def run(api: httpx.AsyncClient, owner: Tenant, code: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return await create_and_dry_run(api, owner, code, body)


async def assert_still_answers(api: httpx.AsyncClient, owner: Tenant) -> None:
    started = time.monotonic()
    result = await run(api, owner, "return [{id: 1}];")
    assert result["ok"] is True and result["events"] == [{"id": 1}], result
    assert time.monotonic() - started < PROMPT_S


def assert_failed(result: dict[str, Any], *expected: str) -> None:
    assert result["ok"] is False and result["events"] == [], result
    assert any(e in result["error"]["message"] for e in expected), result["error"]


TIME_LIMIT = f"exceeded the {WALL_TIME_S} s time limit"
MEMORY_LIMIT = "exceeded the 64 MiB memory limit"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("while (true) {}", (TIME_LIMIT,)),
        ("await null;\nwhile (true) {}", (TIME_LIMIT,)),
        ("for (;;) { try { while (true) {} } catch (e) {} }", (TIME_LIMIT,)),
        (
            "const keep = [];\nwhile (true) {\n  try { keep.push(new Array(1e6).fill(1)); } catch (e) { keep.push(e); }\n}",
            (MEMORY_LIMIT, TIME_LIMIT),
        ),
        ("return [{id: /^(a+)+$/.test('a'.repeat(40) + 'b')}];", (TIME_LIMIT,)),
        ("const a = [];\nfor (;;) a.push(new Array(1e6).fill(0));", (MEMORY_LIMIT,)),
        ("const a = [];\nfor (;;) a.push(new Float64Array(4e6));", (MEMORY_LIMIT,)),
        ("let s = 'x';\nfor (;;) s += s;", (MEMORY_LIMIT, "string too long")),
        ("await new Promise(() => {});", ("never finished",)),
        ("setTimeout(() => {}, 60000);\nawait new Promise(() => {});", (TIME_LIMIT,)),
        ("function f() { return f(); }\nf();", ("Maximum call stack size exceeded",)),
    ],
    ids=[
        "busy-loop", "busy-loop-after-await", "loop-catching-its-interrupt", "loop-catching-its-oom",
        "catastrophic-regex", "array-bomb", "typed-array-bomb", "string-bomb", "never-settling-promise",
        "timer-past-the-deadline", "deep-recursion",
    ],
)
async def test_runaway_code_fails_alone_and_the_api_stays_prompt(api, owner, code, expected):
    started = time.monotonic()
    result = await run(api, owner, code)
    assert_failed(result, *expected)
    assert time.monotonic() - started < WALL_TIME_S + 2
    await assert_still_answers(api, owner)


async def test_the_host_is_not_reachable_from_the_code(api, owner):
    probe = (
        "return [{id: 1, kinds: [typeof require, typeof process, typeof std, typeof os, typeof module, "
        "typeof Deno, typeof Bun, typeof globalThis.import, typeof scriptArgs]}];"
    )
    result = await run(api, owner, probe)
    assert result["ok"] is True, result
    assert result["events"][0]["kinds"] == ["undefined"] * 9
    result = await run(api, owner, "const m = await import('os');\nreturn [];")
    assert_failed(result, "could not load module")
    await assert_still_answers(api, owner)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://localhost:9/",
        "http://[::1]:9/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:9/",
        "http://2130706433/",
        "file:///etc/passwd",
    ],
)
async def test_fetch_to_private_and_local_targets_is_refused(api, owner, url):
    result = await run(api, owner, f"await fetch({url!r});\nreturn [];")
    assert_failed(result, "fetch refused")
    assert result["error"]["line"] == 1
    await assert_still_answers(api, owner)


SECRET = "s3cr3t-" + uuid.uuid4().hex


async def test_secrets_stay_out_of_our_logs_and_error_bodies(api, owner, caplog, capsys):
    body = {"secrets": {"API_TOKEN": SECRET}, "inputs": {}}
    code = (
        "console.log('token', secrets.API_TOKEN);\n"
        "try { await fetch('http://10.0.0.1/?t=' + secrets.API_TOKEN, "
        "{headers: {Authorization: 'Bearer ' + secrets.API_TOKEN}}); } catch (e) { console.log(e.message); }\n"
        "throw new Error('failed with ' + secrets.API_TOKEN);"
    )
    with caplog.at_level(logging.DEBUG):
        result = await run(api, owner, code, body)
        # What the code prints or throws is redacted too (RUNTIME.md, "Secrets").
        assert result["logs"][0] == "token [redacted]"
        assert "failed with [redacted]" in result["error"]["message"]
        assert SECRET not in json.dumps(result)
        refused = await api.post(
            run_path("", owner.integration_id, str(uuid.uuid4())), json={**body, "bogus": 1}, headers=owner.auth
        )
        assert_problem(refused, 400, "validation_error")
        assert SECRET not in refused.text
    assert SECRET not in caplog.text
    assert SECRET not in capsys.readouterr().err

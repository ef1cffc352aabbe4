"""Polling code through the API: the syntax check on save, and the test-run route (its body, its
inputs check, its auth, and a real run of the seed's code against a fake issues API)."""

import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from odeus_triggers.auth.scopes import Scope
from odeus_triggers.db.tables import Trigger
from odeus_triggers.integrations.service import create_integration
from odeus_triggers.timestamps import as_utc
from odeus_triggers.triggers.examples import SEED_POLLING_CODE, SEED_TRIGGER

from support.fake_http import API_TOKEN, ISSUES
from support.helpers import (
    Tenant,
    assert_problem,
    client_of,
    create_path,
    error_fields,
    key_for,
    make_tenant,
    run_path,
    started_app,
    trigger_path,
)

SYNTAX = re.compile(r"^syntax error at line (\d+), column (\d+): (?!SyntaxError)\S")


@pytest.fixture(scope="module")
async def dev_app(settings: Any) -> AsyncIterator[Any]:
    """An app whose fetch may reach 127.0.0.1, where the fake issues API listens."""
    async with started_app(settings, polling_allow_private_network=True, polling_timeout_seconds=5) as app:
        yield app


@pytest.fixture
async def dev_client(dev_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(dev_app) as c:
        yield c


async def create(client: httpx.AsyncClient, tenant: Tenant, base: str = "", **body: Any) -> dict[str, Any]:
    body.setdefault("name", f"Trigger {uuid.uuid4().hex[:8]}")
    response = await client.post(create_path(base, tenant.integration_id), json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()["trigger"]


def syntax_error(response: httpx.Response) -> tuple[int, int]:
    problem = assert_problem(response, 400, "validation_error")
    [error] = [e for e in problem["errors"] if e["field"] == "pollingCode"]
    match = SYNTAX.match(error["message"])
    assert match, error["message"]
    return int(match[1]), int(match[2])


# ------------------------------------------------------------------ syntax check when saved


async def test_a_syntax_error_on_create_names_the_line_and_column_in_the_users_code(client, tenant, base):
    code = "const a = 1;\nconst b = 2;\nreturn [a +;\n"
    response = await client.post(
        create_path(base, tenant.integration_id), json={"name": "Broken", "pollingCode": code}, headers=tenant.auth
    )
    assert syntax_error(response) == (3, 12)


async def test_a_syntax_error_on_update_is_400_and_the_trigger_keeps_its_code(app, client, tenant, base):
    trigger = await create(client, tenant, base, pollingCode="return [];")
    path = trigger_path(base, tenant.integration_id, trigger["id"])
    response = await client.put(path, json={"name": trigger["name"], "pollingCode": "\n  let x = ;"}, headers=tenant.auth)
    assert syntax_error(response) == (2, 11)
    async with app.state.engine.connect() as conn:
        stored = await conn.scalar(select(Trigger.polling_code).where(Trigger.id == uuid.UUID(trigger["id"])))
    assert stored == "return [];"


@pytest.mark.parametrize(
    ("code", "position"),
    [("}); globalThis.x = 1; (async function(){", (1, 2)), ("return []; }\nasync function evil() {", (1, 12))],
    ids=["closes-the-call", "closes-the-body"],
)
async def test_code_that_closes_its_wrapper_is_a_syntax_error(client, tenant, code, position):
    response = await client.post(
        create_path("", tenant.integration_id), json={"name": "Escape", "pollingCode": code}, headers=tenant.auth
    )
    assert syntax_error(response) == position


@pytest.mark.parametrize(
    "code",
    ["await null;\nreturn [];", "const r = await Promise.resolve([{id: 1}]);\nreturn r;", SEED_POLLING_CODE],
    ids=["await-return", "await-value", "seed"],
)
async def test_valid_code_with_top_level_await_and_return_is_saved(client, tenant, code):
    trigger = await create(client, tenant, pollingCode=code)
    assert trigger["type"] == "POLLING" and trigger["pollingCode"] == code


async def test_the_syntax_error_joins_the_other_problems_of_the_body(client, tenant):
    body = {
        "name": "   ",
        "pollingCode": "return (;",
        "inputFields": [{"label": "Priority", "type": "SELECT"}],
        "pollingcode": "typo",
    }
    response = await client.post(create_path("", tenant.integration_id), json=body, headers=tenant.auth)
    assert_problem(response, 400, "validation_error")
    assert set(error_fields(response)) == {"name", "pollingcode", "inputFields[0].options", "pollingCode"}
    syntax_error(response)


async def test_code_that_breaks_the_string_rules_is_not_compiled(client, tenant):
    response = await client.post(
        create_path("", tenant.integration_id), json={"name": "Long", "pollingCode": "(" * 1001}, headers=tenant.auth
    )
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"] == [{"field": "pollingCode", "message": "must be at most 1000 characters"}]


async def test_checks_come_in_order_401_403_400_404(app, client, tenant):
    body = {"name": "Order", "pollingCode": "return (;"}
    path = create_path("", tenant.integration_id)
    assert_problem(await client.post(path, json=body), 401, "unauthorized")
    no_scope = await key_for(app, tenant, [Scope.ASSISTANT_API])
    assert_problem(await client.post(path, json=body, headers=no_scope), 403, "insufficient_scope")
    missing = create_path("", str(uuid.uuid4()))
    syntax_error(await client.post(missing, json=body, headers=tenant.auth))
    body["pollingCode"] = "return [];"
    assert_problem(await client.post(missing, json=body, headers=tenant.auth), 404, "integration_not_found")


async def test_an_unavailable_sandbox_is_503_for_code_and_out_of_the_way_without_it(settings):
    async with started_app(settings) as app, client_of(app) as c:
        await app.state.sandbox.close()
        tenant = await make_tenant(app)
        path = create_path("", tenant.integration_id)
        response = await c.post(path, json={"name": "Code", "pollingCode": "return [];"}, headers=tenant.auth)
        assert_problem(response, 503, "service_unavailable")
        assert response.headers["retry-after"] == "5"
        for code in (None, "", "  \n\t"):
            response = await c.post(path, json={"name": f"No code {code!r}", "pollingCode": code}, headers=tenant.auth)
            assert response.status_code == 201 and response.json()["trigger"]["type"] == "WEBHOOK"
        # With other problems in the body, those are worth more to the client than a 503.
        response = await c.post(path, json={"name": "", "pollingCode": "return [];"}, headers=tenant.auth)
        assert error_fields(response) == ["name"]
        trigger = await create(c, tenant)
        response = await c.put(
            trigger_path("", tenant.integration_id, trigger["id"]), json={"name": "Renamed"}, headers=tenant.auth
        )
        assert response.status_code == 200
        response = await c.post(run_path("", tenant.integration_id, trigger["id"]), headers=tenant.auth)
        assert_problem(response, 400, "validation_error")
        async with app.state.engine.begin() as conn:
            await conn.execute(
                Trigger.__table__.update().where(Trigger.id == uuid.UUID(trigger["id"])).values(polling_code="return [];")
            )
        response = await c.post(run_path("", tenant.integration_id, trigger["id"]), headers=tenant.auth)
        assert_problem(response, 503, "service_unavailable")
        assert response.headers["retry-after"] == "5"


# ---------------------------------------------------------------------------------- test run


async def test_the_seed_code_runs_against_a_fake_issues_api(dev_client, dev_app, fake_api, base):
    tenant = await make_tenant(dev_app)
    code = SEED_POLLING_CODE.replace("https://api.example.com", fake_api.url(""))
    trigger = await create(dev_client, tenant, base, **{**SEED_TRIGGER, "pollingCode": code})
    response = await dev_client.post(
        run_path(base, tenant.integration_id, trigger["id"]),
        json={
            "inputs": {"projectId": "proj_123", "priorityFilter": "high"},
            "secrets": {"API_TOKEN": API_TOKEN},
            "lastPollTime": "2024-05-01T12:00:00+02:00",
        },
        headers=tenant.auth,
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is True and result["error"] is None and result["logs"] == []
    assert result["events"] == [
        {"id": i["id"], "title": i["title"], "description": i["description"], "createdAt": i["created_at"]}
        for i in ISSUES
    ]
    assert isinstance(result["durationMs"], (int, float)) and result["durationMs"] >= 0
    seen = fake_api.last_request
    assert {k.lower(): v for k, v in seen["headers"].items()}["authorization"] == f"Bearer {API_TOKEN}"
    # In UTC, as the code is promised.
    assert seen["path"] == "/issues?since=2024-05-01T10:00:00Z"


async def test_the_code_sees_the_body_and_an_empty_body_means_defaults(dev_client, dev_app):
    tenant = await make_tenant(dev_app)
    trigger = await create(
        dev_client, tenant, pollingCode="return [{id: 1, inputs, secrets, lastPollTime}];",
        inputFields=[{"label": "Project ID"}],
    )
    path = run_path("", tenant.integration_id, trigger["id"])
    empty = await dev_client.post(path, headers=tenant.auth)
    assert empty.json()["events"] == [{"id": 1, "inputs": {}, "secrets": {}, "lastPollTime": None}]
    given = await dev_client.post(
        path,
        json={"inputs": {"projectId": "p"}, "secrets": {"A": "b"}, "lastPollTime": "2024-05-01T10:00:00.5"},
        headers=tenant.auth,
    )
    assert given.json()["events"] == [
        {"id": 1, "inputs": {"projectId": "p"}, "secrets": {"A": "b"}, "lastPollTime": "2024-05-01T10:00:00.500000Z"}
    ]


async def test_failures_of_the_code_are_200_with_the_error_and_the_logs(dev_client, dev_app):
    tenant = await make_tenant(dev_app)
    code = "console.log('starting', {n: 1});\nconsole.warn('careful');\nthrow new Error('Failed to fetch issues');"
    trigger = await create(dev_client, tenant, pollingCode=code)
    response = await dev_client.post(run_path("", tenant.integration_id, trigger["id"]), json={}, headers=tenant.auth)
    assert response.status_code == 200
    result = response.json()
    assert result["ok"] is False and result["events"] == []
    assert result["logs"] == ['starting {"n":1}', "[warn] careful"]
    assert result["error"] == {"message": "Error: Failed to fetch issues", "line": 3, "column": 11}


async def test_a_bad_result_is_reported(dev_client, dev_app):
    tenant = await make_tenant(dev_app)
    trigger = await create(dev_client, tenant, pollingCode="return [{title: 'no id'}];")
    result = (await dev_client.post(run_path("", tenant.integration_id, trigger["id"]), headers=tenant.auth)).json()
    assert result["ok"] is False
    assert result["error"]["message"] == "Result must be an array of objects; item 0 has no id"


async def test_a_test_run_stores_nothing(app, client, tenant):
    trigger = await create(client, tenant, pollingCode="return [{id: 1}];")
    response = await client.post(run_path("", tenant.integration_id, trigger["id"]), headers=tenant.auth)
    assert response.json()["ok"] is True
    async with app.state.engine.connect() as conn:
        query = select(Trigger.updated_at, Trigger.polling_code).where(Trigger.id == uuid.UUID(trigger["id"]))
        row = (await conn.execute(query)).one()
    assert as_utc(row.updated_at) == datetime.fromisoformat(trigger["updatedAt"])
    assert row.polling_code == "return [{id: 1}];"


# ---------------------------------------------------------------------- test run: its request

ALL_TYPES = [
    {"label": "Title", "type": "TEXT", "required": True},
    {"label": "Notes", "type": "MULTI_LINE_TEXT"},
    {"label": "Password", "type": "PASSWORD"},
    {"label": "Limit", "type": "NUMBER", "required": True},
    {"label": "Open", "type": "BOOLEAN"},
    {"label": "Priority", "type": "SELECT", "options": [{"label": "High", "value": "high"}, {"label": "Low", "value": "low"}]},
    {"label": "Labels", "type": "SELECT", "allowMultiSelect": True, "options": [{"label": "Bug", "value": "bug"}]},
    {"label": "Embedding", "type": "VECTOR"},
]


async def test_every_problem_of_the_inputs_is_named_at_once(client, tenant, base):
    trigger = await create(client, tenant, pollingCode="return [];", inputFields=ALL_TYPES)
    inputs = {
        "notes": 3,
        "password": ["hunter2-secret"],
        "limit": True,
        "open": "yes",
        "priority": "urgent",
        "labels": "bug",
        "embedding": [1, "2"],
        "projectId": "p",
        "a b": 1,
    }
    response = await client.post(
        run_path(base, tenant.integration_id, trigger["id"]), json={"inputs": inputs}, headers=tenant.auth
    )
    problem = assert_problem(response, 400, "validation_error")
    messages = {e["field"]: e["message"] for e in problem["errors"]}
    assert messages == {
        "inputs.title": "is required",
        "inputs.notes": "must be a string (MULTI_LINE_TEXT field)",
        "inputs.password": "must be a string (PASSWORD field)",
        "inputs.limit": "must be a finite number (NUMBER field)",
        "inputs.open": "must be true or false (BOOLEAN field)",
        "inputs.priority": 'must be one of the option values: "high", "low" (SELECT field)',
        "inputs.labels": 'must be an array of option values: "bug" (SELECT field)',
        "inputs.embedding": "must be an array of finite numbers (VECTOR field)",
        "inputs": messages["inputs"],
        "inputs.projectId": "is not an input field of this trigger",
        'inputs["a b"]': "is not an input field of this trigger",
    }
    assert messages["inputs"].startswith("has 2 keys that are not input fields of this trigger; the fields are embedding,")
    assert "hunter2-secret" not in response.text


async def test_valid_inputs_of_every_type_reach_the_code(client, tenant):
    trigger = await create(client, tenant, pollingCode="return [{id: 1, inputs}];", inputFields=ALL_TYPES)
    inputs = {
        "title": "t", "notes": "a\nb", "password": "p", "limit": 2.5, "open": False,
        "priority": "low", "labels": ["bug", "bug"], "embedding": [0.1, -2, 3],
    }
    response = await client.post(
        run_path("", tenant.integration_id, trigger["id"]), json={"inputs": inputs}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["events"] == [{"id": 1, "inputs": inputs}]
    # Optional fields may be left out or null; a required one may not be null.
    response = await client.post(
        run_path("", tenant.integration_id, trigger["id"]),
        json={"inputs": {"title": "t", "limit": 1, "open": None}},
        headers=tenant.auth,
    )
    assert response.json()["ok"] is True
    response = await client.post(
        run_path("", tenant.integration_id, trigger["id"]), json={"inputs": {"title": None, "limit": 1}}, headers=tenant.auth
    )
    assert assert_problem(response, 400, "validation_error")["errors"] == [{"field": "inputs.title", "message": "is required"}]


async def test_non_finite_numbers_are_refused(client, tenant):
    trigger = await create(client, tenant, pollingCode="return [];", inputFields=[{"label": "N", "type": "NUMBER"}])
    response = await client.post(
        run_path("", tenant.integration_id, trigger["id"]),
        content=b'{"inputs": {"n": NaN}}',
        headers={**tenant.auth, "Content-Type": "application/json"},
    )
    assert error_fields(response) == ["inputs.n"]


async def test_a_trigger_without_code_has_nothing_to_run(client, tenant, base):
    trigger = await create(client, tenant, inputFields=[{"label": "Project", "required": True}])
    response = await client.post(run_path(base, tenant.integration_id, trigger["id"]), json={}, headers=tenant.auth)
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"][0]["field"] == "pollingCode"
    assert "no code to run" in problem["errors"][0]["message"]
    assert error_fields(response) == ["pollingCode", "inputs.project"]


async def test_the_body_is_checked_strictly_and_secrets_are_not_echoed(client, tenant):
    trigger = await create(client, tenant, pollingCode="return [];")
    body = {
        "inputs": [],
        "secrets": {"API_TOKEN": 12345678, "OTHER": "s3cr3t-value"},
        "lastPollTime": "yesterday s3cr3t-value",
        "lastpolltime": None,
    }
    response = await client.post(run_path("", tenant.integration_id, trigger["id"]), json=body, headers=tenant.auth)
    problem = assert_problem(response, 400, "validation_error")
    assert {e["field"]: e["message"] for e in problem["errors"]} == {
        "inputs": "must be an object",
        "secrets.API_TOKEN": "must be a string",
        "lastpolltime": "is not a known field; did you mean 'lastPollTime'?",
        "lastPollTime": "must be an ISO-8601 date-time, e.g. 2024-05-01T10:00:00Z",
    }
    assert "s3cr3t" not in response.text and "12345678" not in response.text


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"[]", "application/json", 400, "validation_error"),
        (b"{", "application/json", 400, "validation_error"),
        (b"inputs=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
async def test_a_body_that_is_not_a_json_object(client, tenant, content, content_type, status, code):
    trigger = await create(client, tenant, pollingCode="return [];")
    response = await client.post(
        run_path("", tenant.integration_id, trigger["id"]),
        content=content,
        headers={**tenant.auth, "Content-Type": content_type},
    )
    assert_problem(response, status, code)


async def test_auth_and_access_of_the_test_run(app, client, tenant, base):
    trigger = await create(client, tenant, pollingCode="return [];")
    path = run_path(base, tenant.integration_id, trigger["id"])
    assert_problem(await client.post(path), 401, "unauthorized")
    no_scope = await key_for(app, tenant, [Scope.ASSISTANT_API])
    assert_problem(await client.post(path, headers=no_scope), 403, "insufficient_scope")

    bad_integration = run_path(base, "not-a-uuid", trigger["id"])
    assert error_fields(await client.post(bad_integration, headers=tenant.auth)) == ["integrationId"]
    bad_trigger = run_path(base, tenant.integration_id, "not-a-uuid")
    assert error_fields(await client.post(bad_trigger, headers=tenant.auth)) == ["triggerId"]

    missing = run_path(base, str(uuid.uuid4()), trigger["id"])
    assert_problem(await client.post(missing, headers=tenant.auth), 404, "integration_not_found")
    other = await make_tenant(app)
    foreign = run_path(base, other.integration_id, trigger["id"])
    assert_problem(await client.post(foreign, headers=tenant.auth), 403, "integration_forbidden")
    second = await create_integration(app.state.engine, other.workspace_id, "Second", "")
    sibling = await create(client, Tenant(other.workspace_id, other.key, second["id"]), pollingCode="return [];")
    # A trigger of another integration is not found through this one, even in the same workspace.
    for trigger_id in (str(uuid.uuid4()), sibling["id"]):
        response = await client.post(run_path(base, other.integration_id, trigger_id), headers=other.auth)
        assert_problem(response, 404, "trigger_not_found")
    # Path and body problems come before existence.
    response = await client.post(missing, json={"secrets": {"A": 1}}, headers=tenant.auth)
    assert error_fields(response) == ["secrets.A"]

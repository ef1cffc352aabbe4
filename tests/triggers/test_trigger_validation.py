"""Every rule of "The trigger body": a 400 problem+json listing each problem, and nothing written."""

import pytest

from support.helpers import assert_problem, create_path, error_fields

SELECT_OPTS = [{"label": "A", "value": "a"}]


async def post(client, tenant, body, base=""):
    return await client.post(create_path(base, tenant.integration_id), json=body, headers=tenant.auth)


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({}, "name", "required"),
        ({"name": ""}, "name", "empty"),
        ({"name": "   "}, "name", "empty"),
        ({"name": "x" * 101}, "name", "at most 100"),
        ({"name": 5}, "name", "string"),
        ({"name": "a\x00b"}, "name", "control"),
        ({"name": "a\nb"}, "name", "control"),
        ({"name": "ok", "description": "d" * 91}, "description", "at most 90"),
        ({"name": "ok", "description": "bell\x07"}, "description", "control"),
        ({"name": "ok", "description": "nul\x00"}, "description", "control"),
        ({"name": "ok", "pollingCode": "x" * 1001}, "pollingCode", "at most 1000"),
        ({"name": "ok", "pollingCode": "return 1;\x00"}, "pollingCode", "control"),
        ({"name": "ok", "pollingcode": "return []"}, "pollingcode", "did you mean 'pollingCode'"),
        ({"name": "ok", "inputFields": {}}, "inputFields", "array"),
        ({"name": "ok", "inputFields": [{"label": f"F{i}"} for i in range(51)]}, "inputFields", "at most 50"),
        ({"name": "ok", "inputFields": [{}]}, "inputFields[0].label", "required"),
        ({"name": "ok", "inputFields": [{"label": "x" * 101}]}, "inputFields[0].label", "at most 100"),
        ({"name": "ok", "inputFields": [{"label": "L", "type": "DATE"}]}, "inputFields[0].type", "TEXT"),
        ({"name": "ok", "inputFields": [{"label": "L", "description": "x" * 501}]}, "inputFields[0].description", "500"),
        ({"name": "ok", "inputFields": [{"label": "L", "placeholder": "x" * 201}]}, "inputFields[0].placeholder", "200"),
        ({"name": "ok", "inputFields": [{"label": "L", "required": "yes"}]}, "inputFields[0].required", "true or false"),
        ({"name": "ok", "inputFields": [{"label": "L", "colour": "red"}]}, "inputFields[0].colour", "not a known field"),
        ({"name": "ok", "inputFields": [{"label": "L", "type": "SELECT"}]}, "inputFields[0].options", "required for a SELECT"),
        ({"name": "ok", "inputFields": [{"label": "L", "type": "SELECT", "options": []}]},
         "inputFields[0].options", "at least 1"),
        ({"name": "ok", "inputFields": [
            {"label": "L", "type": "SELECT", "options": [{"label": str(i), "value": str(i)} for i in range(201)]},
        ]},
         "inputFields[0].options", "at most 200"),
        ({"name": "ok", "inputFields": [{"label": "L", "type": "SELECT", "options": [{"label": "", "value": "a"}]}]},
         "inputFields[0].options[0].label", "empty"),
        ({"name": "ok", "inputFields": [{"label": "L", "type": "SELECT", "options": [{"label": "A", "value": ""}]}]},
         "inputFields[0].options[0].value", "empty"),
        ({"name": "ok", "inputFields": [{"label": "L", "type": "SELECT", "options": [{"label": "A", "value": "v" * 201}]}]},
         "inputFields[0].options[0].value", "at most 200"),
        ({"name": "ok", "inputFields": [
            {"label": "L", "type": "SELECT", "options": [{"label": "A", "value": "a"}, {"label": "B", "value": "a"}]},
        ]},
         "inputFields[0].options[1].value", "unique"),
        ({"name": "ok", "inputFields": [{"label": "L", "type": "SELECT", "options": [{"label": "A", "value": "a", "x": 1}]}]},
         "inputFields[0].options[0].x", "not a known field"),
        ({"name": "ok", "inputFields": [{"label": "L", "options": SELECT_OPTS}]},
         "inputFields[0].options", "only allowed on SELECT"),
        ({"name": "ok", "inputFields": [{"label": "L", "type": "NUMBER", "allowMultiSelect": True}]},
         "inputFields[0].allowMultiSelect", "only allowed on SELECT"),
    ],
)
async def test_each_rule_gives_a_400_naming_the_field(client, tenant, body, field, fragment):
    response = await post(client, tenant, body)
    problem = assert_problem(response, 400, "validation_error")
    messages = {e["field"]: e["message"] for e in problem["errors"]}
    assert field in messages, problem
    assert fragment in messages[field], messages[field]


async def test_all_problems_are_listed_at_once(client, tenant, base):
    body = {
        "name": "",
        "description": "d" * 91,
        "pollingcode": "x",
        "inputFields": [
            {"label": "Same", "type": "SELECT"},
            {"label": "same", "options": SELECT_OPTS},
        ],
    }
    response = await post(client, tenant, body, base)
    assert_problem(response, 400, "validation_error")
    assert set(error_fields(response)) == {
        "name", "description", "pollingcode", "inputFields[0].options", "inputFields[1].options",
        "inputFields[1].label",
    }
    assert "more problems" in response.json()["detail"]


async def test_labels_with_the_same_slug_are_both_named(client, tenant):
    body = {"name": "ok", "inputFields": [{"label": "Project ID"}, {"label": "Other"}, {"label": "project-id"}]}
    problem = assert_problem(await post(client, tenant, body), 400, "validation_error")
    [error] = problem["errors"]
    assert error["field"] == "inputFields[2].label"
    assert "inputFields[0].label" in error["message"] and "projectId" in error["message"]


async def test_allow_multi_select_false_or_null_is_fine_on_other_types(client, tenant):
    body = {"name": "ok", "inputFields": [{"label": "A", "allowMultiSelect": False}, {"label": "B", "allowMultiSelect": None}]}
    response = await post(client, tenant, body)
    assert response.status_code == 201, response.text
    assert [f["allowMultiSelect"] for f in response.json()["trigger"]["inputFields"]] == [None, None]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"name": "x"', "not valid JSON"),
        (b'{"name": "\\ud800"}', "not valid JSON"),
        (b'{"name": "\xff\xfe"}', "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"name"', "JSON object"),
        (b"null", "JSON object"),
        (b"", "required"),
    ],
    ids=["truncated", "lone-surrogate", "invalid-utf8", "array", "string", "null", "empty"],
)
async def test_bodies_that_are_not_a_json_object(client, tenant, base, raw, fragment):
    response = await client.post(
        create_path(base, tenant.integration_id), content=raw,
        headers={**tenant.auth, "Content-Type": "application/json"},
    )
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"][0]["field"] == "body"
    assert fragment in problem["errors"][0]["message"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]
)
async def test_a_body_that_is_not_declared_as_json_is_415(client, tenant, base, content_type):
    headers = dict(tenant.auth)
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.post(create_path(base, tenant.integration_id), content=b'{"name": "x"}', headers=headers)
    assert_problem(response, 415, "unsupported_media_type")


async def test_a_body_over_256_kib_is_413_by_content_length(client, tenant, base):
    raw = b'{"name": "big", "description": "' + b"x" * (256 * 1024) + b'"}'
    response = await client.post(
        create_path(base, tenant.integration_id), content=raw,
        headers={**tenant.auth, "Content-Type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_a_streamed_body_over_256_kib_is_413(client, tenant):
    async def chunks():
        yield b'{"name": "big", "description": "'
        for _ in range(40):
            yield b"x" * 8192
        yield b'"}'

    response = await client.post(
        create_path("", tenant.integration_id), content=chunks(),
        headers={**tenant.auth, "Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")


async def test_nothing_is_written_by_a_rejected_body(client, tenant):
    bad = {"name": "Kept out", "inputFields": [{"label": "L", "type": "SELECT"}]}
    assert (await post(client, tenant, bad)).status_code == 400
    good = {"name": "Kept out"}
    response = await post(client, tenant, good)
    assert response.status_code == 201
    assert response.json()["trigger"]["slug"] == "kept-out"


async def test_validation_errors_never_echo_the_submitted_value(client, tenant):
    secret = "sk_live_do_not_echo_me"
    response = await post(client, tenant, {"name": secret * 10, "inputFields": [{"label": "L", "required": secret}]})
    assert response.status_code == 400
    assert secret not in response.text


async def test_unknown_keys_are_named_briefly_and_printably(client, tenant):
    raw = b'{"name": "ok", "na\\u0000me": 1, "' + b"k" * 100_000 + b'": 1}'
    response = await client.post(
        create_path("", tenant.integration_id), content=raw,
        headers={**tenant.auth, "Content-Type": "application/json"},
    )
    problem = assert_problem(response, 400, "validation_error")
    assert sorted(error_fields(response)) == ["k" * 64 + "…", "na\ufffdme"]
    assert all(e["message"].startswith("is not a known field") for e in problem["errors"])
    assert len(response.content) < 2_000

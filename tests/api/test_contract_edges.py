"""Regressions found by contract fuzzing (tests/test_schemathesis.py), pinned down one by one."""

import json
import re
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from odeus_triggers.api.base_schemas import RequestModel, name, name_pattern
from odeus_triggers.triggers.poll_time import LOCAL_DATE_TIME_PATTERN, parse_poll_time

from support.helpers import assert_problem, create_path, run_path


async def create(client, tenant, **body):
    response = await client.post(create_path("", tenant.integration_id), json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return response.json()["trigger"]


# ------------------------------------------------------------------ lastPollTime of a test run


@pytest.mark.parametrize(
    ("given_time", "seen"),
    [
        ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00Z"),
        ("2024-05-01t10:00:00z", "2024-05-01T10:00:00Z"),  # RFC 3339 allows lowercase t and z
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999999Z"),  # a leap second
        ("2024-05-01T10:00:00.123456789Z", "2024-05-01T10:00:00.123456Z"),
        ("2024-05-01T10:00:00", "2024-05-01T10:00:00Z"),  # no offset: UTC
        # Outside datetime's range once in UTC: these were 500s. Now the nearest bound.
        ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z"),
        ("9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59.999999Z"),
        ("0000-12-31T23:00:00-02:00", "0001-01-01T01:00:00Z"),
    ],
)
async def test_every_rfc_3339_date_time_reaches_the_code_in_utc(client, tenant, given_time, seen):
    trigger = await create(client, tenant, name=f"T {uuid.uuid4().hex[:8]}", pollingCode="return [{id: 1, lastPollTime}];")
    response = await client.post(
        run_path("", tenant.integration_id, trigger["id"]), json={"lastPollTime": given_time}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["events"] == [{"id": 1, "lastPollTime": seen}]


@pytest.mark.parametrize(
    "bad", ["2024-05-01", "2024-05-01 10:00:00Z", "2023-02-29T10:00:00Z", "2024-05-01T24:00:00Z",
            "2024-05-01T10:00:00+24:00", "２０２４-05-01T10:00:00Z", ""],
)
def test_what_is_not_a_date_time_is_refused(bad):
    assert parse_poll_time(bad) is None


@settings(max_examples=300)
@given(st.dates(), st.integers(0, 23), st.integers(0, 59), st.integers(0, 60), st.sampled_from(["T", "t"]))
def test_the_pattern_of_times_without_offset_is_exactly_what_is_parsed(day, hour, minute, second, t):
    text = f"{day.isoformat()}{t}{hour:02d}:{minute:02d}:{second:02d}"
    assert re.fullmatch(LOCAL_DATE_TIME_PATTERN, text)
    assert parse_poll_time(text) is not None
    wrong_day = f"{day.year:04d}-{day.month:02d}-32{t}{hour:02d}:{minute:02d}:00"
    assert not re.fullmatch(LOCAL_DATE_TIME_PATTERN, wrong_day) and parse_poll_time(wrong_day) is None


async def test_a_test_run_body_of_white_space_is_invalid_json(client, tenant):
    trigger = await create(client, tenant, name=f"T {uuid.uuid4().hex[:8]}", pollingCode="return [];")
    response = await client.post(
        run_path("", tenant.integration_id, trigger["id"]), content=b"\x0b",
        headers={**tenant.auth, "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "validation_error")


# ------------------------------------------------------------------------- names and their schema


class Named(RequestModel):
    n: name(5)  # type: ignore[valid-type]


NAME_CHARS = list(" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2000\u2028\u3000\ufeffab\x00\x07é\U0001f600")


@settings(max_examples=2000)
@given(st.text(st.sampled_from(NAME_CHARS), max_size=9))
def test_the_documented_name_pattern_is_exactly_what_is_accepted(text):
    try:
        Named.model_validate_json(json.dumps({"n": text}))
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == bool(re.fullmatch(name_pattern(5), text))


# --------------------------------------------------------------- SELECT rules, in words only


async def test_the_select_rules_are_said_in_words_and_enforced_by_the_server(app, client, tenant):
    # Once an `anyOf` with untyped branches, which client generators could not read (issue 14):
    # now a sentence in the schema, and the server's 400 as before.
    field = app.openapi()["components"]["schemas"]["InputFieldIn"]
    assert "anyOf" not in field
    assert "A `SELECT` field needs `options`" in field["description"]
    body = {"name": "Rules", "inputFields": [
        {"label": "A", "type": "SELECT"},
        {"label": "B", "type": "TEXT", "options": [{"label": "X", "value": "x"}]},
        {"label": "C", "allowMultiSelect": True},
        {"label": "D", "type": None, "allowMultiSelect": False, "options": None},
    ]}
    response = await client.post(create_path("", tenant.integration_id), json=body, headers=tenant.auth)
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"] == [
        {"field": "inputFields[0].options", "message": "is required for a SELECT field"},
        {"field": "inputFields[1].options", "message": "is only allowed on SELECT fields"},
        {"field": "inputFields[2].allowMultiSelect", "message": "is only allowed on SELECT fields"},
    ]

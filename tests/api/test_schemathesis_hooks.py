"""The fuzzer's hooks bring a body within the rules that the schema states only in words, and
change nothing else: what they give, the server accepts; what they were given, it refused."""

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from schemathesis_hooks import PLACEHOLDER_OPTION, within_contract, within_select_rule, without_astral_refused

from odeus_triggers.api.base_schemas import display_name_pattern
from odeus_triggers.integrations.schemas import IntegrationIn

from support.helpers import assert_problem, create_path

OPTIONS = [{"label": "A", "value": "a"}]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ({"label": "P", "type": "SELECT"}, {"label": "P", "type": "SELECT", "options": [PLACEHOLDER_OPTION]}),
        ({"label": "P", "type": "SELECT", "options": None},
         {"label": "P", "type": "SELECT", "options": [PLACEHOLDER_OPTION]}),
        ({"label": "P", "type": "SELECT", "options": OPTIONS, "allowMultiSelect": True},
         {"label": "P", "type": "SELECT", "options": OPTIONS, "allowMultiSelect": True}),
        ({"label": "P", "options": OPTIONS}, {"label": "P"}),
        ({"label": "P", "type": None, "options": OPTIONS}, {"label": "P", "type": None}),
        ({"label": "P", "type": "NUMBER", "options": None, "allowMultiSelect": True},
         {"label": "P", "type": "NUMBER", "options": None, "allowMultiSelect": False}),
        ({"label": "P", "type": "TEXT", "allowMultiSelect": False}, {"label": "P", "type": "TEXT", "allowMultiSelect": False}),
    ],
)
def test_the_select_rule_is_met_with_the_least_change(field, expected):
    assert within_select_rule(field) == expected


async def test_a_body_brought_within_the_select_rule_is_accepted(client, tenant):
    body = {
        "name": "Fuzzed",
        "inputFields": [
            {"label": "A", "type": "SELECT"},
            {"label": "B", "options": OPTIONS},
            {"label": "C", "type": "BOOLEAN", "allowMultiSelect": True},
            {"label": "D", "type": "SELECT", "options": OPTIONS},
        ],
    }
    refused = await client.post(create_path("", tenant.integration_id), json=body, headers=tenant.auth)
    problem = assert_problem(refused, 400, "validation_error")
    assert [e["field"] for e in problem["errors"]] == [
        "inputFields[0].options", "inputFields[1].options", "inputFields[2].allowMultiSelect"
    ]
    adjusted = within_contract(body)
    response = await client.post(create_path("", tenant.integration_id), json=adjusted, headers=tenant.auth)
    assert response.status_code == 201, response.text
    fields = response.json()["trigger"]["inputFields"]
    assert [f["options"] for f in fields] == [[PLACEHOLDER_OPTION], None, None, OPTIONS]


NAME_CHARS = list(" a\u00e9\u3164\u200b\U0001f600\U000e0041\U000e0100\U000e0001\U000110bd\U0001d173")


@settings(max_examples=1000)
@given(st.text(st.sampled_from(NAME_CHARS), max_size=8))
def test_a_name_the_pattern_matches_is_accepted_once_its_astral_controls_are_replaced(text):
    # The schema's pattern leaves the astral Cf and ignorable characters out (Spectral reads it
    # without the `u` flag); the hook makes every name it matches one the server accepts.
    if not re.fullmatch(display_name_pattern(40), text):
        return
    adjusted = without_astral_refused(text)
    assert len(adjusted) == len(text) and re.fullmatch(display_name_pattern(40), adjusted)
    try:
        IntegrationIn.model_validate_json(json.dumps({"name": adjusted}))
    except ValidationError as exc:
        raise AssertionError(f"{adjusted!r} refused: {exc}") from None

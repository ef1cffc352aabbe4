"""Trigger and integration names are NFC-normalized, and hold no Cc or Cf character and at least
one visible one: `Café` typed two ways was two triggers, and a name of U+200B or one with a
U+202E override was accepted."""

import json
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from odeus_triggers.api.base_schemas import CONTROL_OR_FORMAT, RequestModel, display_name, display_name_pattern

from support.helpers import assert_problem, create_path, integration_path, trigger_path

NFC_CAFE = "Caf\u00e9 orders"
NFD_CAFE = "Cafe\u0301 orders"
BAD_NAMES = [
    pytest.param("\u200b\u200b", "visible character", id="zero-width-only"),
    pytest.param("\ufeff", "visible character", id="bom-only"),
    pytest.param("\u3164", "visible character", id="hangul-filler-only"),
    pytest.param("invoice\u202etxt.exe", "U+202E", id="rtl-override"),
    pytest.param("Inv\u2066oice", "U+2066", id="bidi-isolate"),
    pytest.param("Deploy\u200dDone", "U+200D", id="zero-width-joiner"),
    pytest.param("Next\u0085line", "U+0085", id="c1-next-line"),
    pytest.param("Esc\u009bape", "U+009B", id="c1-csi"),
    pytest.param("Del\u007fete", "U+007F", id="delete"),
    pytest.param("Nul\u0000l", "U+0000", id="c0-nul"),
]


async def create_trigger(client, tenant, base, name):
    return await client.post(create_path(base, tenant.integration_id), json={"name": name}, headers=tenant.auth)


async def trigger_names(client, tenant, base) -> list[str]:
    response = await client.get(integration_path(base, tenant.integration_id), headers=tenant.auth)
    assert response.status_code == 200, response.text
    return [t["name"] for t in response.json()["integration"]["triggers"]]


def name_error(response) -> str:
    problem = assert_problem(response, 400, "validation_error")
    [error] = problem["errors"]
    assert error["field"] == "name", problem
    return error["message"]


# ------------------------------------------------------------------------------------ triggers


async def test_nfd_after_nfc_is_a_409_on_create(client, tenant, base):
    created = await create_trigger(client, tenant, base, NFC_CAFE)
    assert created.status_code == 201, created.text
    assert_problem(await create_trigger(client, tenant, base, NFD_CAFE), 409, "trigger_name_conflict")
    assert_problem(await create_trigger(client, tenant, base, NFD_CAFE.upper()), 409, "trigger_name_conflict")
    assert await trigger_names(client, tenant, base) == [NFC_CAFE]


async def test_an_nfd_name_is_stored_and_returned_as_nfc(client, tenant, base):
    created = await create_trigger(client, tenant, base, f" \u00a0{NFD_CAFE}\u3000")
    assert created.status_code == 201, created.text
    trigger = created.json()["trigger"]
    assert trigger["name"] == NFC_CAFE
    assert trigger["slug"] == "cafe-orders"
    assert await trigger_names(client, tenant, base) == [NFC_CAFE]
    assert_problem(await create_trigger(client, tenant, base, NFC_CAFE), 409, "trigger_name_conflict")


async def test_nfd_after_nfc_is_a_409_on_update(client, tenant, base):
    assert (await create_trigger(client, tenant, base, NFC_CAFE)).status_code == 201
    other = (await create_trigger(client, tenant, base, "Other")).json()["trigger"]
    path = trigger_path(base, tenant.integration_id, other["id"])
    assert_problem(await client.put(path, json={"name": NFD_CAFE}, headers=tenant.auth), 409, "trigger_name_conflict")
    assert await trigger_names(client, tenant, base) == [NFC_CAFE, "Other"]
    # Renaming a trigger to another spelling of its own name is no conflict.
    renamed = await client.put(path, json={"name": "O\u0301ther"}, headers=tenant.auth)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["trigger"]["name"] == "\u00d3ther"
    assert renamed.json()["trigger"]["slug"] == "other"


@pytest.mark.parametrize(("name", "fragment"), BAD_NAMES)
async def test_invisible_and_control_characters_are_a_400_on_create(client, tenant, base, name, fragment):
    message = name_error(await create_trigger(client, tenant, base, name))
    assert fragment in message, message
    assert await trigger_names(client, tenant, base) == []


@pytest.mark.parametrize(("name", "fragment"), BAD_NAMES)
async def test_invisible_and_control_characters_are_a_400_on_update(client, tenant, base, name, fragment):
    trigger = (await create_trigger(client, tenant, base, "Kept")).json()["trigger"]
    path = trigger_path(base, tenant.integration_id, trigger["id"])
    message = name_error(await client.put(path, json={"name": name, "description": "changed"}, headers=tenant.auth))
    assert fragment in message, message
    stored = (await client.get(integration_path(base, tenant.integration_id), headers=tenant.auth)).json()
    assert [(t["name"], t["description"]) for t in stored["integration"]["triggers"]] == [("Kept", "")]


async def test_trimming_comes_first_and_the_messages_say_what_is_wrong(client, tenant):
    # U+0085 is white space too: around the name it is trimmed, inside it is refused.
    created = await create_trigger(client, tenant, "", "\u0085Edges\u0085")
    assert created.status_code == 201, created.text
    assert created.json()["trigger"]["name"] == "Edges"
    assert name_error(await create_trigger(client, tenant, "", "  \u200b  ")) == (
        "must contain a visible character; it holds only white space and invisible characters "
        "such as U+200B (ZERO WIDTH SPACE)"
    )
    assert name_error(await create_trigger(client, tenant, "", "  ab\u202ec  ")) == (
        "must not contain control or invisible formatting characters (Unicode Cc and Cf); "
        "found U+202E (RIGHT-TO-LEFT OVERRIDE) at character 3"
    )
    assert name_error(await create_trigger(client, tenant, "", "   ")) == "must not be empty"


async def test_the_length_counts_the_normalized_name(client, tenant):
    # 100 characters once composed, 200 as sent.
    created = await create_trigger(client, tenant, "", "e\u0301" * 100)
    assert created.status_code == 201, created.text
    assert created.json()["trigger"]["name"] == "\u00e9" * 100
    assert "at most 100" in name_error(await create_trigger(client, tenant, "", "\u00e9" * 101))


async def test_emoji_with_variation_selectors_stay_valid_names(client, tenant):
    created = await create_trigger(client, tenant, "", "Alert \u2764\ufe0f")
    assert created.status_code == 201, created.text
    assert created.json()["trigger"]["name"] == "Alert \u2764\ufe0f"


# -------------------------------------------------------------------------------- integrations


async def integration_names(client, tenant, base) -> list[str]:
    response = await client.get(f"{base}/integrations/v1/get", headers=tenant.auth)
    assert response.status_code == 200, response.text
    return [i["name"] for i in response.json()["integrations"]]


async def test_an_nfd_integration_name_is_stored_as_nfc(client, tenant, base):
    created = await client.post(f"{base}/integrations/v1/create", json={"name": NFD_CAFE}, headers=tenant.auth)
    assert created.status_code == 201, created.text
    assert created.json()["integration"]["name"] == NFC_CAFE
    assert await integration_names(client, tenant, base) == ["Tracker", NFC_CAFE]


@pytest.mark.parametrize(("name", "fragment"), BAD_NAMES)
async def test_invisible_and_control_characters_in_an_integration_name_are_a_400(client, tenant, base, name, fragment):
    response = await client.post(f"{base}/integrations/v1/create", json={"name": name}, headers=tenant.auth)
    message = name_error(response)
    assert fragment in message, message
    assert await integration_names(client, tenant, base) == ["Tracker"]


# ----------------------------------------------------------------------------- the schema's pattern


class Named(RequestModel):
    n: display_name(5)  # type: ignore[valid-type]


# None of these composes with another under NFC, so the length is the same before and after.
NAME_CHARS = list(
    " \t\n\x0b\x1c\x85\xa0\u2000\u2028\u3000ab\u00e9\U0001f600\x00\x7f\x9b\u00ad\u200b\u200d\u202e\u2066"
    "\ufeff\u3164\u115f\ufe0f\u034f\u2065\u0489"
)
# Refused by the server, and left out of the pattern (see `display_name_pattern`).
ASTRAL_CHARS = ["\U000e0041", "\U000e0100", "\U000e0001", "\U000110bd", "\U0001d173"]


def accepts(text):
    try:
        Named.model_validate_json(json.dumps({"n": text}))
    except ValidationError:
        return False
    return True


@settings(max_examples=3000)
@given(st.text(st.sampled_from(NAME_CHARS), max_size=9))
def test_the_documented_pattern_is_exactly_what_is_accepted(text):
    assert accepts(text) == bool(re.fullmatch(display_name_pattern(5), text))


@settings(max_examples=1000)
@given(st.text(st.sampled_from(NAME_CHARS + ASTRAL_CHARS), max_size=9))
def test_beyond_the_bmp_the_pattern_accepts_more_than_the_server(text):
    if accepts(text):
        assert re.fullmatch(display_name_pattern(5), text)


@pytest.mark.parametrize("text", ["\U000e0100", " \U000e0100\u3164 ", "a\U000e0001", "a\U000110bdb", "\U0001d173a"])
def test_astral_controls_and_lone_ignorables_match_the_pattern_and_are_refused(text):
    assert re.fullmatch(display_name_pattern(5), text)
    assert not accepts(text)


def test_the_pattern_has_no_astral_character():
    # ECMA-262 without the `u` flag (Spectral's `regex` format) reads an astral character as two
    # UTF-16 code units, and a range of them in a class as "out of order": an invalid document.
    for limit in (40, 100):
        assert all(ord(c) < 0x10000 for c in display_name_pattern(limit))


def test_the_table_of_refused_characters_is_unicodes_cc_and_cf():
    table = {cp for lo, hi in CONTROL_OR_FORMAT for cp in range(lo, hi + 1)}
    assert table == {cp for cp in range(0x110000) if unicodedata.category(chr(cp)) in ("Cc", "Cf")}


def test_the_schema_carries_the_rule(app):
    schemas = app.openapi()["components"]["schemas"]
    for model, limit in (("TriggerIn", 100), ("IntegrationIn", 40)):
        name = schemas[model]["properties"]["name"]
        assert name["pattern"] == display_name_pattern(limit)
        assert "NFC" in name["description"]

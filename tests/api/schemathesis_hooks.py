"""Schemathesis hooks for tests/test_schemathesis.py (loaded by the `schemathesis` CLI, not by pytest).

Three rules of the trigger body in the contract cannot be written in JSON Schema, so a body the
schema accepts may still rightly get 400, and `positive_data_acceptance` would report it:

1. `pollingCode` must compile as the body of an async JavaScript function (a syntax error is a
   400). No regular expression describes JavaScript.
2. The option `value`s of a SELECT field are unique within the field (JSON Schema's
   `uniqueItems` compares whole options, not one of their properties).
3. The labels of a trigger's input fields must give distinct field slugs (`Project ID` and
   `project id` both give `projectId`); the slug is a function of the label.

Rather than switch the check off for the two operations that matter most, the positive bodies of
the fuzzer are brought within these three rules, in the least invasive way, and nothing else is
changed: non-blank polling code becomes a block comment holding the generated text (so any
character still travels to the database, as in tests/test_roundtrip_property.py), and a later
option or input field that repeats an earlier value or slug is dropped.

Likewise, an `Idempotency-Key` is one request's key: the same key with another body rightly gets
422 `idempotency_key_reused`, and the fuzzer, which draws the same few keys again and again (the
coverage phase uses one), cannot know that. A positive key gets a suffix that makes it unique, so
that its request is processed instead of answered 422 (and its body reaches the database).

A trigger's name is unique in its integration (409 otherwise, which the checks accept), and the
fuzzer draws the same few names again and again, so most creates and renames would stop at the
unique index. Every other positive body gets a name made unique by a suffix, so that whole bodies
(input fields, options, code) are stored, while the other half still meets the 409.

The test run of a trigger checks `inputs` against that trigger's stored input fields, which the
fuzzer cannot know; positive test-run bodies carry no `inputs`, so that in the run pinned to a
trigger whose input fields are all optional, every one of them must be accepted.

Negative components are left exactly as generated. Each adjusted component still satisfies the
schema (Schemathesis revalidates a case after a hook changes it).
"""

import itertools
from typing import Any

import schemathesis
from schemathesis.core.parameters import ParameterLocation

from odeus_triggers.triggers.slugs import field_slug

IDEMPOTENT_OPERATIONS = {
    ("POST", "/integrations/v1/create"),
    ("POST", "/integrations/v1/{integrationId}/triggers/create"),
}
IDEMPOTENCY_KEY = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX = 255
_key_numbers = itertools.count(1)
TRIGGER_BODY_OPERATIONS = {
    ("POST", "/integrations/v1/{integrationId}/triggers/create"),
    ("PUT", "/integrations/v1/{integrationId}/triggers/{triggerId}"),
}
TEST_RUN_OPERATION = ("POST", "/integrations/v1/{integrationId}/triggers/{triggerId}/test")
POLLING_CODE_MAX = 1000
NAME_MAX = 100
_name_numbers = itertools.count(1)


def as_comment(code: str) -> str:
    """`code` inside one block comment: valid JavaScript, at most POLLING_CODE_MAX characters."""
    inner = code.replace("*/", "* /")[: POLLING_CODE_MAX - 4]
    return f"/*{inner}*/"


def unique_name(name: str, number: int) -> str:
    """`name` with a numbered suffix before its trailing white space, at most NAME_MAX once trimmed."""
    core = name.strip()
    suffix = f" ~{number}"
    start = name.index(core)
    return name[:start] + core[: NAME_MAX - len(suffix)] + suffix + name[start + len(core) :]


def within_contract(body: dict[str, Any]) -> dict[str, Any]:
    body = dict(body)
    number = next(_name_numbers)
    if number % 2 == 0 and isinstance(body.get("name"), str):
        body["name"] = unique_name(body["name"], number)
    code = body.get("pollingCode")
    if isinstance(code, str) and code.strip():
        body["pollingCode"] = as_comment(code)
    fields = body.get("inputFields")
    if isinstance(fields, list):
        slugs: set[str] = set()
        kept = []
        for field in fields:
            if isinstance(field, dict) and isinstance(field.get("label"), str):
                slug = field_slug(field["label"].strip())
                if slug in slugs:
                    continue
                slugs.add(slug)
                field = _unique_options(field)
            kept.append(field)
        body["inputFields"] = kept
    return body


def _unique_options(field: dict[str, Any]) -> dict[str, Any]:
    options = field.get("options")
    if not isinstance(options, list):
        return field
    values: set[str] = set()
    kept = []
    for option in options:
        value = option.get("value") if isinstance(option, dict) else None
        if isinstance(value, str):
            if value in values:
                continue
            values.add(value)
        kept.append(option)
    return {**field, "options": kept}


def unique_key(key: str) -> str:
    """`key` made unique in this run, still 1 to 255 printable ASCII characters."""
    suffix = f"~{next(_key_numbers)}"
    return key[: IDEMPOTENCY_KEY_MAX - len(suffix)] + suffix


def _is_positive(case: Any, location: ParameterLocation) -> bool:
    meta = case.meta
    info = meta.components.get(location) if meta is not None else None
    return info is not None and not info.mode.is_negative


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    operation = (case.method.upper(), case.operation.path)
    if operation in IDEMPOTENT_OPERATIONS and _is_positive(case, ParameterLocation.HEADER):
        key = case.headers.get(IDEMPOTENCY_KEY) if case.headers else None
        if isinstance(key, str):
            headers = dict(case.headers)
            headers[IDEMPOTENCY_KEY] = unique_key(key)
            case.headers = type(case.headers)(headers)
    if operation in TRIGGER_BODY_OPERATIONS and isinstance(case.body, dict) and _is_positive(case, ParameterLocation.BODY):
        adjusted = within_contract(case.body)
        if adjusted != case.body:
            case.body = adjusted
    if operation == TEST_RUN_OPERATION and isinstance(case.body, dict) and "inputs" in case.body:
        if _is_positive(case, ParameterLocation.BODY):
            case.body = {k: v for k, v in case.body.items() if k != "inputs"}
    return case

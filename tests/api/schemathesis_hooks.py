"""Schemathesis hooks for tests/api/test_schemathesis.py (loaded by the `schemathesis` CLI, not by pytest).

Four rules of the trigger body in the contract are not in its JSON Schema, so a body the
schema accepts may still rightly get 400, and `positive_data_acceptance` would report it:

1. `pollingCode` must compile as the body of an async JavaScript function (a syntax error is a
   400). No regular expression describes JavaScript.
2. The option `value`s of a SELECT field are unique within the field (JSON Schema's
   `uniqueItems` compares whole options, not one of their properties).
3. The labels of a trigger's input fields must give distinct field slugs (`Project ID` and
   `project id` both give `projectId`); the slug is a function of the label.
4. A SELECT field needs `options`; a field of any other type (a missing or null `type` is TEXT)
   takes no `options` and no `allowMultiSelect: true`. JSON Schema could say this, but only as an
   `anyOf` whose branches give no types, which client generators cannot read (openapi-python-client
   dropped Create and Update Trigger): the schema states it in words, and the server enforces it.

Rather than switch the check off for the two operations that matter most, the positive bodies of
the fuzzer are brought within these four rules, in the least invasive way, and nothing else is
changed: non-blank polling code becomes a block comment holding the generated text (so any
character still travels to the database, as in tests/test_roundtrip_property.py), a later
option or input field that repeats an earlier value or slug is dropped, a SELECT field without
options gets one (`{"label": "Option", "value": "option"}`), and a field of another type loses
its `options` and has `allowMultiSelect: true` turned to false.

The `name` of a trigger or an integration: the server refuses every Unicode Cc and Cf character
and a name with nothing visible, and the schema's pattern says so exactly on the Basic
Multilingual Plane. It leaves out the astral ones (`ASTRAL_REFUSED`: tag characters, the variation
selectors supplement, a few format controls), which ECMA-262 read without the `u` flag (Spectral)
cannot take in a character class. A positive name has each of them replaced with `x`, which keeps
its length and its place in the pattern.

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

The subscription and secrets routes add rules of the same kind, each brought within in the same way:

- A `webhookUrl` must pass the address guard: a host that resolves, to public addresses only.
  The schema says its form (scheme, length, no white space) but not where the host points, and
  the fuzzer's hosts would need DNS (there is none in CI, and a lookup is slow). A positive URL
  becomes `http(s)://93.184.215.14/h/<n>/` (a public address literal, so no lookup) followed by
  the generated text after `://`, percent-encoded, so that its characters still reach the database.
- `inputs` are checked against the input fields of the trigger the path names, as for a test run.
  The pinned subscription triggers have TEST_RUN_TRIGGER's fields (`projectId`, TEXT, and
  `priorityFilter`, SELECT), none required: positive `inputs` keep one generated string, as
  `projectId`, and a `priorityFilter` that is one of its options, and nothing else (so no PASSWORD
  `{"set": true}` either, which needs a stored value).
- A secret value is at most 8 KiB of UTF-8; the schema can only say 8,192 characters. A positive
  value is cut, at a character boundary, to 8,192 bytes.
- A merge (PUT an integration's secrets, PATCH a subscription's) may leave at most 50 names stored,
  which depends on what earlier requests stored. Positive merge bodies set at most 50 distinct names
  in the whole run (a later new name is replaced by one already set; deletions are kept), so that no
  integration or subscription ever holds more.
- A PATCH `status` may be the current one (ignored) or `active`/`paused`; the current one is state.
  The pinned subscription is only ever active or paused, so a positive `paused_errors` or
  `disabled` (refused unless current) is dropped.
- A `cursor` is one that the list returned (opaque, and checked): a positive one is dropped, so the
  first page is asked for.

Negative components are left exactly as generated. For these routes, a component that the case's
metadata does not mark negative counts as positive: the documented examples, which carry no
generation mode and reach the hooks through `before_add_examples`, are valid requests (the create
example's host, `workflows.example.com`, would need DNS). Each adjusted component still satisfies the
schema (Schemathesis revalidates a case after a hook changes it).
"""

import itertools
from typing import Any
from urllib.parse import quote

import schemathesis
from schemathesis.core.parameters import ParameterLocation

from odeus_triggers.api.base_schemas import ASTRAL_REFUSED
from odeus_triggers.triggers.slugs import field_slug

_SUBSCRIPTION = "/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions/{subscriptionId}"
IDEMPOTENT_OPERATIONS = {
    ("POST", "/integrations/v1/create"),
    ("POST", "/integrations/v1/{integrationId}/triggers/create"),
    ("POST", "/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions"),
    ("POST", _SUBSCRIPTION + "/events/{eventId}/redeliver"),
    ("POST", _SUBSCRIPTION + "/rotate-signing-secret"),
}
CREATE_INTEGRATION = ("POST", "/integrations/v1/create")
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
PLACEHOLDER_OPTION = {"label": "Option", "value": "option"}
_name_numbers = itertools.count(1)

SUBSCRIPTIONS = "/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions"
CREATE_SUBSCRIPTION = ("POST", SUBSCRIPTIONS)
UPDATE_SUBSCRIPTION = ("PATCH", SUBSCRIPTIONS + "/{subscriptionId}")
UPDATE_INTEGRATION_SECRETS = ("PUT", "/integrations/v1/{integrationId}/secrets")
PUBLIC_ADDRESS = "93.184.215.14"
WEBHOOK_URL_MAX = 2048
SECRET_VALUE_MAX_BYTES = 8 * 1024
MAX_SECRETS = 50
CHANGEABLE_STATUSES = {"active", "paused"}
PRIORITY_OPTIONS = ("all", "high", "medium", "low")
_url_numbers = itertools.count(1)
_set_secret_names: list[str] = []


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


def without_astral_refused(name: str) -> str:
    """`name` with each astral character that the server refuses (and the pattern omits) as `x`."""
    return "".join("x" if any(lo <= ord(ch) <= hi for lo, hi in ASTRAL_REFUSED) else ch for ch in name)


def within_contract(body: dict[str, Any]) -> dict[str, Any]:
    body = dict(body)
    if isinstance(body.get("name"), str):
        body["name"] = without_astral_refused(body["name"])
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
            if isinstance(field, dict):
                field = within_select_rule(field)
            kept.append(field)
        body["inputFields"] = kept
    return body


def within_select_rule(field: dict[str, Any]) -> dict[str, Any]:
    """A SELECT field has options; any other field has none, and no `allowMultiSelect: true`."""
    if field.get("type") == "SELECT":
        return field if field.get("options") is not None else {**field, "options": [dict(PLACEHOLDER_OPTION)]}
    field = {k: v for k, v in field.items() if k != "options" or v is None}
    if field.get("allowMultiSelect") is True:
        field["allowMultiSelect"] = False
    return field


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


def public_webhook_url(url: str) -> str:
    """`url` pointed at a public address literal, its generated text kept (encoded) in the path."""
    scheme, _, rest = url.partition("://")
    head = f"{scheme.lower()}://{PUBLIC_ADDRESS}/h/{next(_url_numbers)}/"
    # Surrogates cannot be percent-encoded as UTF-8; the rest of the text can.
    tail = quote(rest.encode("utf-8", "replace"), safe="")[: WEBHOOK_URL_MAX - len(head)]
    cut = tail.rfind("%", len(tail) - 2)  # an escape cut short
    return head + (tail[:cut] if cut >= 0 else tail)


def pinned_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    kept = {"priorityFilter": inputs["priorityFilter"]} if inputs.get("priorityFilter") in PRIORITY_OPTIONS else {}
    text = next((v for k, v in inputs.items() if k != "priorityFilter" and isinstance(v, str)), None)
    return kept if text is None else {"projectId": text, **kept}


def within_bytes(value: str, limit: int = SECRET_VALUE_MAX_BYTES) -> str:
    size = 0
    for i, ch in enumerate(value):
        size += len(ch.encode("utf-8", "surrogatepass"))
        if size > limit:
            return value[:i]
    return value


def within_secret_limits(secrets: dict[str, Any], merge: bool) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name, value in secrets.items():
        if isinstance(value, str):
            value = within_bytes(value)
            if merge and name not in _set_secret_names:
                if len(_set_secret_names) < MAX_SECRETS:
                    _set_secret_names.append(name)
                else:
                    name = _set_secret_names[len(kept) % MAX_SECRETS]
        kept.setdefault(name, value)
    return kept


def subscription_within_contract(body: dict[str, Any], merge: bool) -> dict[str, Any]:
    body = dict(body)
    if isinstance(body.get("webhookUrl"), str):
        body["webhookUrl"] = public_webhook_url(body["webhookUrl"])
    if isinstance(body.get("inputs"), dict):
        body["inputs"] = pinned_inputs(body["inputs"])
    if isinstance(body.get("secrets"), dict):
        body["secrets"] = within_secret_limits(body["secrets"], merge)
    if isinstance(body.get("status"), str) and body["status"] not in CHANGEABLE_STATUSES:
        del body["status"]
    return body


def unique_key(key: str) -> str:
    """`key` made unique in this run, still 1 to 255 printable ASCII characters."""
    suffix = f"~{next(_key_numbers)}"
    return key[: IDEMPOTENCY_KEY_MAX - len(suffix)] + suffix


def _is_not_negative(case: Any, location: ParameterLocation) -> bool:
    return case.meta is None or not case.meta.is_negative_at(location)


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
    if operation == CREATE_INTEGRATION and isinstance(case.body, dict) and isinstance(case.body.get("name"), str):
        if _is_positive(case, ParameterLocation.BODY):
            name = without_astral_refused(case.body["name"])
            if name != case.body["name"]:
                case.body = {**case.body, "name": name}
    if operation == TEST_RUN_OPERATION and isinstance(case.body, dict) and "inputs" in case.body:
        if _is_positive(case, ParameterLocation.BODY):
            case.body = {k: v for k, v in case.body.items() if k != "inputs"}
    if operation in (CREATE_SUBSCRIPTION, UPDATE_SUBSCRIPTION, UPDATE_INTEGRATION_SECRETS):
        if isinstance(case.body, dict) and _is_not_negative(case, ParameterLocation.BODY):
            merge = operation != CREATE_SUBSCRIPTION
            adjusted = subscription_within_contract(case.body, merge)
            if adjusted != case.body:
                case.body = adjusted
    if case.query and "cursor" in case.query and _is_not_negative(case, ParameterLocation.QUERY):
        case.query = {k: v for k, v in case.query.items() if k != "cursor"}
    return case


@schemathesis.hook
def before_add_examples(context: Any, examples: list[Any]) -> None:
    # The documented examples never reach `map_case`; they are valid requests, so the same rules apply.
    examples[:] = [map_case(context, case) for case in examples]

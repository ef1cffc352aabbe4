"""The OpenAPI document and the offline /docs page that renders it."""

import re
import uuid

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from odeus_triggers.triggers.examples import SEED_TRIGGER

METHODS = {"get", "put", "post", "delete", "patch"}
EVERY_API_OPERATION = {
    "401": ["unauthorized"],
    "403": ["browser_request_blocked"],
    "429": ["rate_limited"],
    "500": ["internal_error"],
    "503": ["service_unavailable"],
}
EVERY_OPERATION = {"403": ["browser_request_blocked"], "500": ["internal_error"]}
WITH_A_BODY = {"400": ["validation_error"], "413": ["payload_too_large"], "415": ["unsupported_media_type"]}


@pytest.fixture
async def document(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document):
    for path, items in document["paths"].items():
        for method, operation in items.items():
            if method in METHODS:
                yield path, method, operation


def test_document_is_valid_openapi(document):
    validate(document)


def test_each_operation_is_listed_once_under_both_servers(document):
    assert [s["url"] for s in document["servers"]] == ["/", "/api/public"]
    assert not [p for p in document["paths"] if p.startswith("/api/public")]
    assert len(list(operations(document))) >= 1


def is_api(path):
    return path.startswith("/integrations/")


def test_each_operation_is_described_and_secured(document):
    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert operation.get("description"), where
        if is_api(path):
            assert operation.get("security") == [{"bearerAuth": []}], where
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_each_request_body_has_an_example(document):
    for path, method, operation in operations(document):
        if "requestBody" in operation:
            media = operation["requestBody"]["content"]["application/json"]
            assert media.get("example") or media.get("examples"), f"{method.upper()} {path}"


def test_create_trigger_example_is_the_seed(document):
    create = document["paths"]["/integrations/v1/{integrationId}/triggers/create"]["post"]
    assert create["requestBody"]["content"]["application/json"]["example"] == SEED_TRIGGER


def test_every_error_the_edge_can_return_is_declared(document):
    for path, method, operation in operations(document):
        expected = EVERY_API_OPERATION if is_api(path) else EVERY_OPERATION
        expected = {**expected, **(WITH_A_BODY if "requestBody" in operation else {})}
        for status, codes in expected.items():
            response = operation["responses"].get(status)
            assert response, f"{method.upper()} {path} does not declare {status}"
            assert response["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
            for code in codes:
                assert f"`{code}`" in response["description"], f"{method.upper()} {path} {status} lacks {code}"


def test_no_fastapi_422_and_headers_are_declared(document):
    assert "HTTPValidationError" not in document["components"]["schemas"]
    headers = document["components"]["headers"]
    assert {"X-Request-ID", "RateLimit-Policy", "RateLimit", "Retry-After", "WWW-Authenticate"} <= set(headers)
    for path, _method, operation in operations(document):
        for status, response in operation["responses"].items():
            declared = set(response.get("headers", {}))
            assert "X-Request-ID" in declared, (path, status)
            if is_api(path):
                assert {"RateLimit-Policy", "RateLimit"} <= declared, (path, status)
            if status in ("429", "503"):
                assert "Retry-After" in declared
            if status == "422":
                assert "validation" not in response["description"].lower()


async def test_docs_page_loads_nothing_from_elsewhere(client):
    response = await client.get("/docs")
    assert response.status_code == 200
    page = response.text
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page, re.I), "the page names another host"
    assert "'/openapi.json'" in page
    assert '"persistAuthorization": true' in page
    assert '"validatorUrl": null' in page
    csp = response.headers["content-security-policy"]
    assert "connect-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', page)
    assert len(assets) == 3
    for asset in assets:
        served = await client.get(asset)
        assert served.status_code == 200, asset
    assert (await client.get("/docs/assets/no-such-file.js")).status_code == 404


SUBSCRIPTION = "/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions/{subscriptionId}"
TRIGGER = "/integrations/v1/{integrationId}/triggers/{triggerId}"
OPERATION_IDS = {
    ("get", "/integrations/v1/get"): "listIntegrations",
    ("post", "/integrations/v1/create"): "createIntegration",
    ("get", "/integrations/v1/{integrationId}"): "getIntegration",
    ("post", "/integrations/v1/{integrationId}/triggers/create"): "createTrigger",
    ("get", "/integrations/v1/{integrationId}/triggers"): "listTriggers",
    ("get", TRIGGER): "getTrigger",
    ("put", TRIGGER): "updateTrigger",
    ("delete", TRIGGER): "deleteTrigger",
    ("post", f"{TRIGGER}/test"): "testTrigger",
    ("put", "/integrations/v1/{integrationId}/secrets"): "updateIntegrationSecrets",
    ("get", "/integrations/v1/{integrationId}/secrets"): "listIntegrationSecrets",
    ("post", f"{TRIGGER}/subscriptions"): "createSubscription",
    ("get", f"{TRIGGER}/subscriptions"): "listSubscriptions",
    ("get", SUBSCRIPTION): "getSubscription",
    ("patch", SUBSCRIPTION): "updateSubscription",
    ("delete", SUBSCRIPTION): "deleteSubscription",
    ("post", f"{SUBSCRIPTION}/poll"): "pollSubscription",
    ("get", f"{SUBSCRIPTION}/polls"): "listPolls",
    ("get", f"{SUBSCRIPTION}/events"): "listEvents",
    ("get", f"{SUBSCRIPTION}/events/{{eventId}}"): "getEvent",
    ("post", f"{SUBSCRIPTION}/events/{{eventId}}/redeliver"): "redeliverEvent",
    ("post", f"{SUBSCRIPTION}/rotate-signing-secret"): "rotateSigningSecret",
}
# The runtime's operations, whose tests below predate the others'.
NEW_OPERATION_IDS = {k: v for k, v in OPERATION_IDS.items() if "/subscriptions" in k[1] or k[1].endswith("/secrets")}


def test_every_operation_has_a_short_camel_case_id(document):
    # Client generators name their methods after operationId: FastAPI's default
    # (`create_trigger_integrations_v1__integrationId__triggers_create_post`) would become the
    # SDK's method name. Each is its route function's name, in camelCase.
    found = {(method, path): operation.get("operationId") for path, method, operation in operations(document)}
    assert found == OPERATION_IDS
    ids = list(found.values())
    assert all(re.fullmatch(r"[a-z][a-zA-Z]{2,39}", i) for i in ids), ids
    assert len(set(ids)) == len(ids), "operationIds are not unique"


def _refs(schema):
    if isinstance(schema, dict):
        if isinstance(schema.get("$ref"), str):
            yield schema["$ref"].rsplit("/", 1)[1]
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


def request_schemas(document):
    """The names of every component schema that a request body uses, directly or not."""
    schemas = document["components"]["schemas"]
    todo = [name for _p, _m, operation in operations(document) for name in _refs(operation.get("requestBody", {}))]
    seen = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_refs(schemas[name]))
    return seen


def test_the_request_schemas_are_found(document):
    expected = {"TriggerIn", "InputFieldIn", "SelectOption", "FieldType", "IntegrationIn", "TestRunIn",
                "IntegrationSecretsIn", "SubscriptionCreate", "SubscriptionPatch"}
    assert expected <= request_schemas(document)


def _schemas_with_default(schema, where):
    if isinstance(schema, dict):
        if "default" in schema:
            yield where
        for key, value in schema.items():
            yield from _schemas_with_default(value, f"{where}.{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from _schemas_with_default(value, f"{where}[{i}]")


def test_request_schemas_have_no_defaults(document):
    # openapi-typescript reads a property with a `default` (Pydantic writes `default: null` for
    # every optional field) as always present, and makes it required: `{"name": …}` for Create
    # Integration, or the seed's own body, would not compile. The defaults are said in words.
    for name in request_schemas(document):
        schema = document["components"]["schemas"][name]
        assert not list(_schemas_with_default(schema, name))
    field = document["components"]["schemas"]["InputFieldIn"]["properties"]
    assert "TEXT" in field["type"]["description"] and "false" in field["required"]["description"]


def test_request_schemas_require_what_the_server_requires(document):
    schemas = document["components"]["schemas"]
    assert schemas["TriggerIn"]["required"] == ["name"]
    assert schemas["InputFieldIn"]["required"] == ["label"]
    assert schemas["IntegrationIn"]["required"] == ["name"]
    assert sorted(schemas["SelectOption"]["required"]) == ["label", "value"]
    assert "required" not in schemas["TestRunIn"]


def _untyped_any_of(schema, where):
    if isinstance(schema, dict):
        for branch in schema.get("anyOf", []):
            if not ({"type", "$ref", "anyOf"} & set(branch)):
                yield where
        for key, value in schema.items():
            yield from _untyped_any_of(value, f"{where}.{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from _untyped_any_of(value, f"{where}[{i}]")


def test_request_schemas_have_only_typed_any_of_branches(document):
    # The SELECT rule was an `anyOf` whose branches gave no types: openapi-python-client dropped
    # Create and Update Trigger, and openapi-typescript let any `options` through.
    for name in request_schemas(document):
        assert not list(_untyped_any_of(document["components"]["schemas"][name], name))


def test_the_select_rule_is_said_in_words_and_options_are_typed(document):
    schemas = document["components"]["schemas"]
    field = schemas["InputFieldIn"]
    assert not {"anyOf", "oneOf", "allOf", "if"} & set(field)
    assert "SELECT" in field["description"] and "options" in field["description"]
    options = field["properties"]["options"]
    assert options["anyOf"] == [
        {"type": "array", "items": {"$ref": "#/components/schemas/SelectOption"}, "minItems": 1, "maxItems": 200},
        {"type": "null"},
    ]
    assert "SELECT" in options["description"]
    option = schemas["SelectOption"]
    assert option["type"] == "object" and option["additionalProperties"] is False
    assert {k: option["properties"][k]["type"] for k in ("label", "value")} == {"label": "string", "value": "string"}
    assert (option["properties"]["value"]["minLength"], option["properties"]["value"]["maxLength"]) == (1, 200)
    assert (option["properties"]["label"]["minLength"], option["properties"]["label"]["maxLength"]) == (1, 100)


def test_problem_errors_is_optional(document):
    # Absent from every problem but a validation error's: typed as always present, code that
    # compiles would crash on a 404.
    problem = document["components"]["schemas"]["Problem"]
    assert "errors" not in problem["required"]
    assert problem["properties"]["errors"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/FieldError"},
        "description": problem["properties"]["errors"]["description"],
    }
    assert set(problem["required"]) == {"title", "status", "detail", "code", "requestId"}


async def test_a_404_has_no_errors_and_a_400_has_them(client, tenant):
    missing = await client.get(f"/integrations/v1/{tenant.integration_id}/triggers/{uuid.uuid4()}", headers=tenant.auth)
    assert missing.status_code == 404 and "errors" not in missing.json()
    invalid = await client.post(f"/integrations/v1/{tenant.integration_id}/triggers/create",
                                json={"name": "x", "inputFields": [{"label": "P", "type": "SELECT"}]}, headers=tenant.auth)
    assert invalid.status_code == 400
    assert invalid.json()["errors"] == [{"field": "inputFields[0].options", "message": "is required for a SELECT field"}]


def test_info_has_a_license_a_contact_and_tags(document):
    info = document["info"]
    assert info["license"]["name"] and info["license"]["url"].startswith("https://")
    assert info["contact"]["name"] and info["contact"]["url"].startswith("https://")
    tags = document["tags"]
    assert all(tag["name"] and tag["description"] for tag in tags)
    assert len({tag["name"] for tag in tags}) == len(tags)
    used = {tag for _p, _m, operation in operations(document) for tag in operation.get("tags", [])}
    assert used == {tag["name"] for tag in tags}
    assert all(operation.get("tags") for _p, _m, operation in operations(document))


def _media_examples(content):
    for media, spec in content.items():
        if "example" in spec:
            yield media, spec["schema"], spec["example"]
        for example in spec.get("examples", {}).values():
            yield media, spec["schema"], example["value"]


def test_every_example_conforms_to_its_schema(document):
    # FastAPI drops nulls from the document: the test route's 200 example lost its required
    # `"error": null`, which Spectral and Redocly flag.
    checked = 0
    for path, method, operation in operations(document):
        contents = [operation.get("requestBody", {}).get("content", {})]
        contents += [response.get("content", {}) for response in operation["responses"].values()]
        for content in contents:
            for media, schema, example in _media_examples(content):
                validator = OAS31Validator({**schema, "components": document["components"]})
                errors = [e.message for e in validator.iter_errors(example)]
                assert not errors, f"{method.upper()} {path} {media}: {errors}"
                checked += 1
    assert checked >= 8


def test_the_test_route_examples_carry_error_null(document):
    content = document["paths"][f"{TRIGGER}/test"]["post"]["responses"]["200"]["content"]["application/json"]
    assert content["examples"]["events"]["value"]["error"] is None
    assert set(content["examples"]["events"]["value"]) == set(document["components"]["schemas"]["TestRunOut"]["required"])


def test_the_read_routes_are_documented(document):
    one, listed = document["paths"][TRIGGER]["get"], document["paths"]["/integrations/v1/{integrationId}/triggers"]["get"]
    assert one["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TriggerEnvelope"}
    assert listed["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TriggerList"}
    trigger_list = document["components"]["schemas"]["TriggerList"]
    assert set(trigger_list["required"]) == {"triggers", "nextCursor"}
    assert {p["name"]: p["in"] for p in listed["parameters"]} == {"integrationId": "path", "limit": "query", "cursor": "query"}
    limit = next(p for p in listed["parameters"] if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 200, 50)
    for operation, codes in ((one, {"404": ["integration_not_found", "trigger_not_found"]}), (listed, {})):
        expected = {"400": ["validation_error"], "401": ["unauthorized"],
                    "403": ["insufficient_scope", "integration_forbidden"], "404": ["integration_not_found"], **codes}
        for status, names in expected.items():
            for name in names:
                assert f"`{name}`" in operation["responses"][status]["description"], (status, name)
        assert operation["security"] == [{"bearerAuth": []}]


def test_new_operations_declare_their_problem_errors(document):
    for (method, path) in NEW_OPERATION_IDS:
        responses = document["paths"][path][method]["responses"]
        for status, code in (("400", "validation_error"), ("401", "unauthorized"), ("403", "insufficient_scope"),
                             ("404", "integration_not_found")):
            response = responses.get(status)
            assert response, f"{method.upper()} {path} does not declare {status}"
            assert response["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
            assert f"`{code}`" in response["description"], f"{method.upper()} {path} {status} lacks {code}"
        if "/triggers/" in path:
            assert "`trigger_not_found`" in responses["404"]["description"] or "subscriptionId" in path, path
        if "{subscriptionId}" in path:
            assert "`subscription_not_found`" in responses["404"]["description"], path


def test_event_links_fill_the_path_with_the_events_msg_id(document):
    # An Event's `eventId` is the code's own id; the path's `{eventId}` is the Event's `id`.
    for method, path, status, pointer in (("get", "/events", "200", "/events/0"),
                                          ("get", "/events/{eventId}", "200", "/event"),
                                          ("post", "/events/{eventId}/redeliver", "202", "/event")):
        links = document["paths"][SUBSCRIPTION + path][method]["responses"][status]["links"]
        assert {link["operationId"] for link in links.values()} == {"getEvent", "redeliverEvent"}
        for link in links.values():
            assert link["parameters"]["eventId"] == f"$response.body#{pointer}/id"

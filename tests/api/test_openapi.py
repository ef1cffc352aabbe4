"""The OpenAPI document and the offline /docs page that renders it."""

import re

import pytest
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
NEW_OPERATION_IDS = {
    ("post", "/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions"): "createSubscription",
    ("get", "/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions"): "listSubscriptions",
    ("get", "/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions/{subscriptionId}"): "getSubscription",
    ("patch", "/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions/{subscriptionId}"): "updateSubscription",
    ("delete", "/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions/{subscriptionId}"): "deleteSubscription",
    ("put", "/integrations/v1/{integrationId}/secrets"): "updateIntegrationSecrets",
    ("get", "/integrations/v1/{integrationId}/secrets"): "listIntegrationSecrets",
    ("get", f"{SUBSCRIPTION}/events"): "listEvents",
    ("get", f"{SUBSCRIPTION}/events/{{eventId}}"): "getEvent",
    ("post", f"{SUBSCRIPTION}/events/{{eventId}}/redeliver"): "redeliverEvent",
    ("post", f"{SUBSCRIPTION}/rotate-signing-secret"): "rotateSigningSecret",
}
NEW_REQUEST_SCHEMAS = ("SubscriptionCreate", "SubscriptionPatch", "IntegrationSecretsIn")


def test_new_operations_have_short_camel_case_ids(document):
    # Client generators name their methods after operationId: FastAPI's default
    # (`create_subscription_integrations_v1_…_post`) would become the SDK's method name.
    for (method, path), expected in NEW_OPERATION_IDS.items():
        assert document["paths"][path][method]["operationId"] == expected, f"{method.upper()} {path}"
    ids = [operation.get("operationId") for _path, _method, operation in operations(document)]
    assert all(re.fullmatch(r"[a-z][a-zA-Z]{2,39}", i) for i in NEW_OPERATION_IDS.values())
    assert len(set(ids)) == len(ids), "operationIds are not unique"


def _schemas_with_default_null(schema, where):
    if isinstance(schema, dict):
        if "default" in schema and schema["default"] is None:
            yield where
        for key, value in schema.items():
            yield from _schemas_with_default_null(value, f"{where}.{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from _schemas_with_default_null(value, f"{where}[{i}]")


def test_new_request_schemas_have_no_null_defaults(document):
    # TypeScript generators read `default: null` as "always present", making optional fields required.
    for name in NEW_REQUEST_SCHEMAS:
        schema = document["components"]["schemas"][name]
        assert schema["properties"], name
        assert not list(_schemas_with_default_null(schema, name))


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


def test_new_request_schemas_have_only_typed_any_of_branches(document):
    for name in NEW_REQUEST_SCHEMAS:
        assert not list(_untyped_any_of(document["components"]["schemas"][name], name))


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

"""The OpenAPI document: both base URLs, Bearer security, and the schemas the routes reference."""

import copy
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, routing
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from .responses import declare_common_responses
from .routing import API_BASES

# The top-level tags, in the order the docs page shows them; every operation's tag is one of these.
TAGS = [
    {"name": "Integrations", "description": "Containers for triggers, one workspace's each."},
    {
        "name": "Triggers",
        "description": "Named event monitors of an integration: input fields and JavaScript polling code. "
        "Create, read, replace, delete, and test-run them.",
    },
    {
        "name": "Integration secrets",
        "description": "Connection secrets of an integration, which polling code reads as `secrets.NAME`. "
        "Values are write-only.",
    },
    {
        "name": "Subscriptions",
        "description": "Scheduled polls of a trigger that deliver each new event, signed, to a webhook; "
        "their polls and events.",
    },
]
CONTACT = {"name": "Odeus support", "url": "https://odeus.ai"}
LICENSE = {"name": "Proprietary", "url": "https://odeus.ai/terms"}


def operation_id(route: APIRoute) -> str:
    """The route function's name in camelCase (`create_trigger` → `createTrigger`): what client
    generators name their methods after. FastAPI's own (`create_trigger_integrations_v1_…_post`)
    would become the SDK's method name. A route may still set its own `operation_id`."""
    head, *rest = route.name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _examples(content: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        media: {key: spec[key] for key in ("example", "examples") if key in spec}
        for media, spec in content.items()
        if isinstance(spec, dict)
    }


def _restore_examples(app: FastAPI, schema: dict[str, Any]) -> None:
    """Put the routes' examples back as they were written: FastAPI drops every null from the
    document, which left the test route's 200 example without its required `"error": null`."""
    # Route contexts, not `app.routes`: those hold the included routers, not their routes.
    for route in routing.iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            body = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
            for media, examples in _examples(body).items():
                operation["requestBody"]["content"][media].update(copy.deepcopy(examples))
            for status, response in (route.responses or {}).items():
                for media, examples in _examples(response.get("content", {})).items():
                    operation["responses"][str(status)]["content"][media].update(copy.deepcopy(examples))


def build_openapi(app: FastAPI, models: Sequence[type[BaseModel]] = ()) -> dict[str, Any]:
    """`models` are published under components/schemas besides those the routes reference: the
    request bodies, which the routes read themselves and so do not declare, and the problem body.
    Passed in, not registered by the routers, so that the document does not depend on import order."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=TAGS,
        contact=CONTACT,
        license_info=LICENSE,
        servers=[
            {"url": base or "/", "description": d}
            for base, d in zip(API_BASES, ("Root", "Dedicated deployments"), strict=True)
        ],
    )
    _restore_examples(app, schema)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in models:
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(model_schema.pop("$defs", {}))
        schemas[model.__name__] = model_schema
    components["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An Odeus API key (`odk_…`)."}
    }
    for path, operations in schema.get("paths", {}).items():
        if path.startswith("/integrations/"):
            for operation in operations.values():
                operation["security"] = [{"bearerAuth": []}]
    declare_common_responses(schema)
    app.openapi_schema = schema
    return schema

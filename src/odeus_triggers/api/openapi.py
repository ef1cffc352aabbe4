"""The OpenAPI document: both base URLs, Bearer security, and the schemas the routes reference."""

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from .responses import declare_common_responses
from .routing import API_BASES


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
        servers=[
            {"url": base or "/", "description": d}
            for base, d in zip(API_BASES, ("Root", "Dedicated deployments"), strict=True)
        ],
    )
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

"""The OpenAPI document: both base URLs, Bearer security, and the schemas the routes reference."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from ..errors import Problem
from .responses import declare_common_responses
from .routing import API_BASES
from ..triggers.schemas import TriggerIn

REFERENCED_MODELS: tuple[type[BaseModel], ...] = (Problem, TriggerIn)


def register_model(model: type[BaseModel]) -> None:
    global REFERENCED_MODELS
    if model not in REFERENCED_MODELS:
        REFERENCED_MODELS = (*REFERENCED_MODELS, model)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        servers=[{"url": base or "/", "description": d} for base, d in zip(API_BASES, ("Root", "Dedicated deployments"))],
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in REFERENCED_MODELS:
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

"""Responses that every operation can give, declared once for the whole OpenAPI document.

The edge middleware (browser blocking, body limit, rate limits) and the error handlers answer for
every route, so their errors and headers are added here rather than on each route: a new route is
documented correctly without having to remember them.
"""

import json
from typing import Any

from ..errors import (
    PROBLEM_JSON,
    ApiError,
    BrowserRequestBlocked,
    InternalError,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    responses_for,
)

HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id (yours if you sent a sane one); quote it to support.",
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": "The quota that applies to this request (IETF httpapi RateLimit headers draft).",
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": "What is left of that quota, and when it resets.",
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    "WWW-Authenticate": {"description": "`Bearer`: how to authenticate.", "schema": {"type": "string"}},
}

_EVERY_RESPONSE = ("X-Request-ID",)
_EVERY_API_RESPONSE = ("X-Request-ID", "RateLimit-Policy", "RateLimit")
_BY_STATUS = {"401": ("WWW-Authenticate",), "429": ("Retry-After",), "503": ("Retry-After",)}
_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def _is_api(path: str) -> bool:
    return path.startswith("/integrations/")


def _errors_for(path: str, operation: dict[str, Any]) -> list[type[ApiError]]:
    errors: list[type[ApiError]] = [BrowserRequestBlocked, InternalError]
    if _is_api(path):
        errors += [Unauthorized, RateLimited, ServiceUnavailable]
    if operation.get("parameters"):
        errors.append(ValidationFailed)
    if "requestBody" in operation:
        errors += [ValidationFailed, PayloadTooLarge, UnsupportedMediaType]
    return errors


def _declare(responses: dict[str, Any], error: type[ApiError]) -> None:
    status = str(error.status)
    entry = responses.get(status)
    if entry is None:
        responses[status] = responses_for(error)[error.status]
        return
    if f"`{error.code}`" not in entry.get("description", ""):
        entry["description"] = f"{entry['description']}; `{error.code}`: {error.title}"
    entry.setdefault("content", {}).setdefault(PROBLEM_JSON, responses_for(error)[error.status]["content"][PROBLEM_JSON])


def _is_fastapi_422(response: dict[str, Any]) -> bool:
    # FastAPI adds a 422 to every route with parameters; this API answers 400 instead.
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref") == "#/components/schemas/HTTPValidationError"


def _drop_unreferenced(schema: dict[str, Any], *names: str) -> None:
    schemas = schema.get("components", {}).get("schemas", {})
    for name in names:
        if name in schemas and f'"#/components/schemas/{name}"' not in json.dumps(schema["paths"]):
            removed = schemas.pop(name)
            if f'"#/components/schemas/{name}"' in json.dumps(schemas):
                schemas[name] = removed


def declare_common_responses(schema: dict[str, Any]) -> None:
    """Add the edge's errors and headers to every operation, and drop FastAPI's unused 422."""
    schema.setdefault("components", {}).setdefault("headers", {}).update(HEADERS)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if _is_fastapi_422(responses.get("422", {})):
                del responses["422"]
            for error in _errors_for(path, operation):
                _declare(responses, error)
            for status, response in responses.items():
                names = (*(_EVERY_API_RESPONSE if _is_api(path) else _EVERY_RESPONSE), *_BY_STATUS.get(status, ()))
                headers = response.setdefault("headers", {})
                for name in names:
                    headers.setdefault(name, {"$ref": f"#/components/headers/{name}"})
            operation["responses"] = dict(sorted(responses.items()))
    _drop_unreferenced(schema, "HTTPValidationError", "ValidationError")

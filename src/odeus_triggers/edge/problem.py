"""Rendering an ApiError as problem+json, both inside FastAPI and from raw ASGI middleware."""

import json

from starlette.responses import JSONResponse
from starlette.types import Scope, Send

from ..errors import PROBLEM_JSON, ApiError
from .request_id import request_id_of


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem_response(error: ApiError, request_id: str) -> ProblemResponse:
    return ProblemResponse(error.body(request_id), status_code=error.status, headers=error.headers)


async def send_problem(scope: Scope, send: Send, error: ApiError, *, close: bool = False) -> None:
    body = json.dumps(error.body(request_id_of(scope))).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
    ]
    if close:
        # The unread body stays on the wire; closing is the only safe way to end the exchange.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

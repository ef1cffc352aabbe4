"""Exception handlers: everything leaves as problem+json; database outages become 503, never 500."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from ..api.json_body import validation_errors_from_fastapi
from ..db.sql import is_outage
from ..errors import ApiError, InternalError, MethodNotAllowed, NotFound, ServiceUnavailable, ValidationFailed
from .problem import problem_response
from .request_id import request_id_of

log = logging.getLogger("odeus_triggers.errors")


def _rid(request: Request) -> str:
    return request_id_of(request.scope)


async def on_api_error(request: Request, exc: ApiError) -> Response:
    return problem_response(exc, _rid(request))


async def on_request_validation(request: Request, exc: RequestValidationError) -> Response:
    return problem_response(ValidationFailed.of(validation_errors_from_fastapi(exc)), _rid(request))


# nginx's "client closed request": the client left mid-body, so no one reads this answer (uvicorn
# drops it), but the access log and the metrics get a 4xx instead of a server error.
CLIENT_CLOSED_REQUEST = 499


async def on_client_disconnect(request: Request, exc: ClientDisconnect) -> Response:
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def on_http_exception(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 404:
        error: ApiError = NotFound()
    elif exc.status_code == 405:
        error = MethodNotAllowed()
        error.headers = dict(exc.headers or {})
    else:
        error = ApiError(str(exc.detail))
        error.status = exc.status_code  # type: ignore[misc]
        error.code = "http_error"  # type: ignore[misc]
        error.title = "Error"  # type: ignore[misc]
    return problem_response(error, _rid(request))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    if is_outage(exc):
        log.warning("database unavailable: %s", type(exc).__name__, extra={"request_id": _rid(request)})
        error: ApiError = ServiceUnavailable()
    else:
        log.exception("unhandled error", extra={"request_id": _rid(request)})
        error = InternalError()
    response = problem_response(error, _rid(request))
    # For an exception no narrower handler takes, Starlette sends this from outside every
    # middleware, where RequestIdMiddleware cannot add the header.
    response.headers["X-Request-ID"] = _rid(request)
    return response


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, on_api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_request_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http_exception)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnect, on_client_disconnect)  # type: ignore[arg-type]
    for kind in (DBAPIError, PoolTimeout, ConnectionError, TimeoutError, OSError):
        app.add_exception_handler(kind, on_unexpected)
    app.add_exception_handler(Exception, on_unexpected)

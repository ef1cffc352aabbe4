"""The `Idempotency-Key` header of the POST create routes: a dependency that runs a route's work
at most once per key, and the OpenAPI that declares it.

Records are scoped to the API key, and the fingerprint leaves out the base (`/api/public`), so a
retry sent to the other base of the same API is recognised as the same request.
"""

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse, Response

from ..api.routing import API_BASES
from ..auth.caller import Caller, get_caller
from ..edge.problem import ProblemResponse, problem_response
from ..edge.request_id import request_id_of
from ..errors import ApiError, FieldError, IdempotencyKeyInUse, IdempotencyKeyReused, ValidationFailed
from .service import Claim, IdempotencyStore, Replay, fingerprint

log = logging.getLogger("odeus_triggers.idempotency")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY = re.compile(r"[\x20-\x7e]{1,255}")

IDEMPOTENCY_ERRORS = (IdempotencyKeyInUse, IdempotencyKeyReused)
HEADER_DESCRIPTION = (
    "Optional, 1 to 255 printable ASCII characters, unique per request (a UUID is a good choice), "
    "and scoped to the API key. A retry with the same key and the same body, at either base URL, "
    "replays the first response (its status and body) with `Idempotent-Replayed: true`, and creates "
    "nothing. The same key with a different body gets 422 `idempotency_key_reused`; while the first "
    "request is still running, 409 `idempotency_key_in_use`. Outcomes are kept for 24 hours: "
    "successes and the request's own client errors (403, 404, 409). A request refused before it "
    "ran (401, 403 scope, 400) is not recorded, so a corrected body can use the same key; neither "
    "is a server error (5xx), so the same request can be retried."
)


def replayed_header_doc(status: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` fragment: the replay header on the success response."""
    return {
        status: {
            "headers": {
                REPLAYED_HEADER: {
                    "description": f"`true` when this is a replay of an earlier request with the same `{HEADER}`.",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            }
        }
    }


def _api_path(request: Request) -> str:
    """The route's path without its base, parameters filled in: the same at both bases."""
    template = getattr(request.scope.get("route"), "path_format", None)
    path = template.format(**request.path_params) if template else request.url.path
    for base in API_BASES:
        if base and path.startswith(base + "/"):
            return path[len(base) :]
    return path


def _parse_key(request: Request) -> str | None:
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    problem = None
    if len(values) > 1:
        problem = "must be sent at most once"
    elif not _KEY.fullmatch(values[0]):
        problem = "must be 1 to 255 printable ASCII characters"
    if problem:
        raise ValidationFailed.of([FieldError(field=HEADER, message=problem)])
    return values[0]


class Idempotency:
    """One request under an optional key. Without a key, `run` simply runs the work."""

    def __init__(self, store: IdempotencyStore, request: Request, caller: Caller, key: str | None) -> None:
        self._store = store
        self._request = request
        self._caller = caller
        self.key = key

    async def run(self, work: Callable[[], Awaitable[Response]]) -> Response:
        if self.key is None:
            return await work()
        body = await self._request.body()
        request_print = fingerprint(self._request.method, _api_path(self._request), body)
        outcome = await self._store.claim(self._caller.key_id, self.key, request_print)
        if isinstance(outcome, Replay):
            return _replay(outcome)
        try:
            response = await work()
        except ApiError as error:
            if error.status < 500:
                # Rendered exactly as the error handler will render it, so that a replay matches.
                rendered = problem_response(error, request_id_of(self._request.scope))
                await self._complete(outcome, error.status, bytes(rendered.body))
            else:
                await self._release(outcome)
            raise
        except BaseException:
            await self._release(outcome)
            raise
        if response.status_code < 500:
            await self._complete(outcome, response.status_code, bytes(response.body))
        else:
            await self._release(outcome)
        return response

    async def _complete(self, claim: Claim, status: int, body: bytes) -> None:
        # The work has committed: failing to record it must not turn its answer into an error.
        # A retry then meets an unfinished claim (409) until it counts as abandoned.
        try:
            await self._store.complete(claim, status, body.decode())
        except Exception:
            log.warning("could not record an idempotent response", exc_info=True)

    async def _release(self, claim: Claim) -> None:
        # Shielded: a cancelled request (client gone) must still give its key back.
        with anyio.CancelScope(shield=True):
            try:
                await self._store.release(claim)
            except Exception:
                log.warning("could not release an idempotency key; it frees itself later", exc_info=True)


def _replay(replay: Replay) -> Response:
    response_class = JSONResponse if replay.status < 400 else ProblemResponse
    return Response(
        replay.body.encode(),
        status_code=replay.status,
        media_type=response_class.media_type,
        headers={REPLAYED_HEADER: "true"},
    )


async def idempotency(
    request: Request,
    caller: Annotated[Caller, Depends(get_caller)],
    # Declared for the OpenAPI document; typed `str` so that it shows as a plain string there.
    idempotency_key: Annotated[
        str,
        Header(
            alias=HEADER,
            description=HEADER_DESCRIPTION,
            json_schema_extra={"minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7E]+$"},
        ),
    ] = None,  # type: ignore[assignment]
) -> Idempotency:
    # Read from the raw headers rather than `idempotency_key`, to refuse a repeated header.
    return Idempotency(request.app.state.idempotency, request, caller, _parse_key(request))


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]

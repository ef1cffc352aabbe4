"""POST …/triggers/{triggerId}/test: run a trigger's polling code once, on demand, in the sandbox.

Nothing is stored: not the events, not a poll time. The code's own failures are a 200 with
`ok: false`; only the request's problems are HTTP errors. The secrets (the integration's, with the
request's over them) are handed to the sandbox and to nothing else: the code may print or throw
them, so the whole result is redacted before it is answered, and so is every log line of the request.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ..api.deps import EngineDep, KeyringDep, SandboxDep
from ..api.json_body import json_body, openapi_body
from ..api.params import IntegrationId, TriggerId
from ..auth.caller import IntegrationCaller
from ..errors import (
    FieldError,
    InsufficientScope,
    IntegrationForbidden,
    IntegrationNotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    TriggerNotFound,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    responses_for,
)
from ..integrations.access import authorize_integration
from ..integrations.secret_rules import secret_values_of
from ..integrations.secrets import integration_secret_values
from ..ops.redaction import redact_json, remember_secrets
from ..sandbox import RunResult, SandboxBusy, SandboxUnavailable
from . import polling_docs
from .body import CODE_FIELD, SANDBOX_RETRY_AFTER_S, sandbox_unavailable
from .inputs import input_errors, load_runnable, password_values_of
from .poll_time import parse_poll_time
from .schemas import TestRunIn, TestRunOut

router = APIRouter(tags=["Triggers"])

EXAMPLE = {
    "inputs": {"projectId": "proj_123", "priorityFilter": "high"},
    "secrets": {"API_TOKEN": "tok_example"},
    "lastPollTime": "2024-05-01T10:00:00Z",
}
RESULT_EXAMPLES = {
    "events": {
        "summary": "The code returned events",
        "value": {
            "ok": True,
            "events": [{"id": 101, "title": "Crash on save", "createdAt": "2024-05-01T10:00:00Z"}],
            "logs": ["fetched 1 issue"],
            "error": None,
            "durationMs": 42.5,
        },
    },
    "failed": {
        "summary": "The code threw",
        "value": {
            "ok": False,
            "events": [],
            "logs": ["status 401"],
            "error": {"message": "Error: Failed to fetch issues", "line": 10, "column": 9},
            "durationMs": 38.1,
        },
    },
}
DESCRIPTION = (
    "Runs the trigger's stored polling code once, in the sandbox, with the `inputs`, `secrets` and "
    "`lastPollTime` of the request, and answers with the events it returned, its console output and "
    "its error. The code sees the integration's stored secrets with the request's `secrets` merged "
    "over them by name (the request's value wins). Every secret value and PASSWORD input value in "
    "the answer (events, logs, error) is replaced with `[redacted]`. "
    "Events are not stored and nothing is marked as polled, so it can be called as often "
    "as needed while writing the code. The body may be empty. Requires the `INTEGRATION_API` scope.\n"
    + polling_docs.RUN_ERRORS
    + polling_docs.SANDBOX
)


def _body_rules(body: Any) -> list[FieldError]:
    value = body.get("lastPollTime") if isinstance(body, dict) else None
    if isinstance(value, str) and parse_poll_time(value) is None:
        return [FieldError(field="lastPollTime", message="must be an ISO-8601 date-time, e.g. 2024-05-01T10:00:00Z")]
    return []


_parse = json_body(TestRunIn, _body_rules)


async def test_run_body(request: Request) -> TestRunIn:
    # Every field is optional, so no body at all is a run with no inputs, secrets or poll time. A
    # body of white space (or of anything else that is not a JSON object) is invalid JSON: 400.
    if not await request.body():
        return TestRunIn()
    return await _parse(request)


TestRunBody = Annotated[TestRunIn, Depends(test_run_body)]


def render(result: RunResult) -> dict[str, Any]:
    error = result.error
    return {
        "ok": result.ok,
        "events": result.events,
        "logs": result.logs,
        "error": None if error is None else {"message": error.message, "line": error.line, "column": error.column},
        "durationMs": round(result.duration_ms, 1),
    }


SUCCESS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The outcome of the run; when the code failed, `ok` is false and `error` says why.",
        "content": {"application/json": {"examples": RESULT_EXAMPLES}},
    }
}
ERRORS = (
    ValidationFailed,
    Unauthorized,
    InsufficientScope,
    IntegrationForbidden,
    IntegrationNotFound,
    TriggerNotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    ServiceUnavailable,
)


def _openapi_extra() -> dict[str, Any]:
    extra = openapi_body(TestRunIn, EXAMPLE)
    extra["requestBody"]["required"] = False
    return extra


@router.post(
    "/integrations/v1/{integrationId}/triggers/{triggerId}/test",
    response_model=TestRunOut,
    summary="Test Trigger",
    description=DESCRIPTION,
    responses={**SUCCESS, **responses_for(*ERRORS)},
    openapi_extra=_openapi_extra(),
)
async def test_trigger(
    caller: IntegrationCaller,
    integration_id: IntegrationId,
    trigger_id: TriggerId,
    body: TestRunBody,
    request: Request,
    engine: EngineDep,
    keyring: KeyringDep,
    sandbox: SandboxDep,
) -> JSONResponse:
    remember_secrets(secret_values_of(body.secrets))
    await authorize_integration(caller, integration_id, request)
    trigger = await load_runnable(engine, integration_id, trigger_id)
    remember_secrets(password_values_of(trigger.inputs, body.inputs))
    # The inputs can only be judged against the trigger's fields, so these 400s come after the 404.
    errors = input_errors(trigger.inputs, body.inputs)
    code = trigger.polling_code
    if code is None:
        errors.insert(0, FieldError(field=CODE_FIELD, message="is not set on this trigger: there is no code to run"))
    if code is None or errors:
        raise ValidationFailed.of(errors)
    last_poll_time = parse_poll_time(body.lastPollTime) if body.lastPollTime is not None else None
    secrets = {**await integration_secret_values(engine, keyring, integration_id), **body.secrets}
    remember_secrets(secrets.values())
    try:
        result = await sandbox.run(
            code, inputs=body.inputs, secrets=secrets, last_poll_time=last_poll_time,
            tenant=str(caller.workspace_id),
        )
    except SandboxBusy as exc:
        raise RateLimited(f"Too many test runs at once: {exc}; retry shortly.", SANDBOX_RETRY_AFTER_S) from None
    except SandboxUnavailable:
        raise sandbox_unavailable() from None
    return JSONResponse(redact_json(render(result)))

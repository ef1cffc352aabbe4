"""The API's side of the polling sandbox: its limits from the settings, the pool dependency, and
the syntax check of `pollingCode` when a trigger is saved.

The check compiles the code in a sandbox worker, never in the API process, and never runs it.
"""

import json
from typing import Annotated

from cachetools import LRUCache
from fastapi import Depends, Request

from ..body import json_body
from ..config import Settings
from ..errors import FieldError, ServiceUnavailable, ValidationFailed
from ..polling import CodeError, SandboxLimits, SandboxPool, SandboxUnavailable
from .rules import cross_field_errors
from .schemas import TriggerIn

CODE_FIELD = "pollingCode"
SANDBOX_RETRY_AFTER_S = 5


def sandbox_limits(settings: Settings) -> SandboxLimits:
    return SandboxLimits(
        workers=settings.polling_workers,
        wall_time_s=settings.polling_timeout_seconds,
        memory_bytes=settings.polling_memory_mb * 1024 * 1024,
        max_fetches=settings.polling_max_fetches,
        allow_private_network=settings.polling_allow_private_network,
        worker_uid=settings.polling_worker_uid,
        worker_gid=settings.polling_worker_gid,
        check_workers=settings.polling_check_workers,
        max_runs_per_tenant=settings.polling_max_runs_per_workspace,
        max_queued_per_tenant=settings.polling_max_queued_per_workspace,
    )


def sandbox_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The polling code sandbox is unavailable; retry shortly.", retry_after=SANDBOX_RETRY_AFTER_S
    )


async def get_sandbox(request: Request) -> SandboxPool:
    return request.app.state.sandbox


SandboxDep = Annotated[SandboxPool, Depends(get_sandbox)]


def has_code(code: object) -> bool:
    return isinstance(code, str) and bool(code.strip())


def syntax_message(error: CodeError) -> str:
    # The engine's messages start with the class name, which the wording below already says.
    message = error.message.removeprefix("SyntaxError: ")
    if error.line is None:
        return f"could not be compiled: {message}"
    return f"syntax error at line {error.line}, column {error.column}: {message}"


class SyntaxVerdicts:
    """Remembers the verdict of the syntax check per exact source text.

    The check is deterministic, and the same code is saved again and again (retries, updates of
    other fields, one template for many triggers); a remembered verdict saves a round trip to a
    worker that is shared with test runs. Only definite verdicts are kept: a time-out or a crashed
    worker says nothing about the code.
    """

    def __init__(self, pool: SandboxPool, size: int = 4096) -> None:
        self.pool = pool
        self._verdicts: LRUCache[str, CodeError | None] = LRUCache(maxsize=size)

    async def check(self, code: str) -> CodeError | None:
        if code in self._verdicts:
            return self._verdicts[code]
        error = await self.pool.check_syntax(code)
        if error is None or error.line is not None:
            self._verdicts[code] = error
        return error


async def code_errors(verdicts: SyntaxVerdicts, code: str) -> list[FieldError]:
    """The syntax error of `code`, if any, as a field error; raises SandboxUnavailable."""
    error = await verdicts.check(code)
    return [] if error is None else [FieldError(field=CODE_FIELD, message=syntax_message(error))]


_parse_trigger = json_body(TriggerIn, cross_field_errors)


async def _raw_code(request: Request) -> object:
    try:
        raw = json.loads(await request.body())
    except ValueError:
        return None
    return raw.get(CODE_FIELD) if isinstance(raw, dict) else None


async def checked_trigger_body(request: Request) -> TriggerIn:
    """The trigger body, its polling code compiled in the sandbox: one 400 lists every problem.

    When the rest of the body is invalid too, the code is still checked (if it is itself a valid
    string), so that the answer names all problems at once; should the sandbox be unavailable
    then, the 400 goes out without the code's verdict rather than as a 503. A body that is valid
    apart from the code gets 503 when the sandbox is unavailable, because it cannot be judged.
    """
    verdicts: SyntaxVerdicts = request.app.state.syntax_verdicts
    try:
        body = await _parse_trigger(request)
    except ValidationFailed as exc:
        errors = exc.errors or []
        if any(e.field in ("body", CODE_FIELD) for e in errors):
            raise
        code = await _raw_code(request)
        if not has_code(code):
            raise
        try:
            found = await code_errors(verdicts, code)  # type: ignore[arg-type]
        except SandboxUnavailable:
            raise exc from None
        raise ValidationFailed.of(errors + found) from None
    if not has_code(body.pollingCode):
        return body
    try:
        found = await code_errors(verdicts, body.pollingCode)  # type: ignore[arg-type]
    except SandboxUnavailable:
        raise sandbox_unavailable() from None
    if found:
        raise ValidationFailed.of(found)
    return body

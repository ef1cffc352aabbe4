"""The trigger body as saved (create and update): parsed, and its `pollingCode` compiled in the
sandbox, so that one 400 lists every problem.

The check compiles the code in a sandbox worker, never in the API process, and never runs it.
"""

import json

from fastapi import Request

from ..api.deps import SyntaxVerdictsDep
from ..api.json_body import json_body
from ..errors import FieldError, ServiceUnavailable, ValidationFailed
from ..sandbox import CodeError, SandboxUnavailable
from ..sandbox.verdicts import SyntaxVerdicts
from .rules import cross_field_errors
from .schemas import TriggerIn

CODE_FIELD = "pollingCode"
SANDBOX_RETRY_AFTER_S = 5


def sandbox_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The polling code sandbox is unavailable; retry shortly.", retry_after=SANDBOX_RETRY_AFTER_S
    )


def has_code(code: object) -> bool:
    return isinstance(code, str) and bool(code.strip())


def syntax_message(error: CodeError) -> str:
    # The engine's messages start with the class name, which the wording below already says.
    message = error.message.removeprefix("SyntaxError: ")
    if error.line is None:
        return f"could not be compiled: {message}"
    return f"syntax error at line {error.line}, column {error.column}: {message}"


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


async def checked_trigger_body(request: Request, verdicts: SyntaxVerdictsDep) -> TriggerIn:
    """The trigger body, its polling code compiled in the sandbox: one 400 lists every problem.

    When the rest of the body is invalid too, the code is still checked (if it is itself a valid
    string), so that the answer names all problems at once; should the sandbox be unavailable
    then, the 400 goes out without the code's verdict rather than as a 503. A body that is valid
    apart from the code gets 503 when the sandbox is unavailable, because it cannot be judged.
    """
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
        found = await code_errors(verdicts, body.pollingCode)
    except SandboxUnavailable:
        raise sandbox_unavailable() from None
    if found:
        raise ValidationFailed.of(found)
    return body

"""Every error the API can return, as one class hierarchy rendered as RFC 9457 problem+json.

Services raise these; one handler renders them; the same classes declare each route's error
responses in OpenAPI, so the document and the behaviour cannot drift apart.
"""

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_JSON = "application/problem+json"


class FieldError(BaseModel):
    field: str = Field(description="JSON-path-like location, e.g. `inputFields[1].options`.")
    message: str


def _errors_may_be_absent(schema: dict[str, Any]) -> None:
    # `errors` is absent, never null, from every problem but a validation error's. As an optional
    # array without a default, client generators type it as optional (`errors?: FieldError[]`):
    # with `default: null`, openapi-typescript typed it as always present.
    errors = schema["properties"]["errors"]
    array = next(branch for branch in errors["anyOf"] if branch.get("type") == "array")
    schema["properties"]["errors"] = {**array, "description": errors["description"]}


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(json_schema_extra=_errors_may_be_absent)

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable, machine-readable error code.")
    requestId: str = Field(description="Quote it when you contact support.")
    errors: list[FieldError] | None = Field(
        None, description="Every field problem at once: present on validation errors (400) only, absent otherwise."
    )


class ApiError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal server error"
    default_detail: ClassVar[str] = "An unexpected error occurred."

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.errors = errors
        self.headers = headers or {}
        super().__init__(self.detail)

    def body(self, request_id: str) -> dict[str, Any]:
        problem: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            "requestId": request_id,
        }
        if self.errors is not None:
            problem["errors"] = [e.model_dump() for e in self.errors]
        return problem


# A body of a few hundred kilobytes can hold tens of thousands of mistakes; listing them all
# turned a 253 kB request into a 121 MB answer. The first ones are enough to act on.
MAX_FIELD_ERRORS = 50


def capped(errors: list[FieldError]) -> list[FieldError]:
    """At most MAX_FIELD_ERRORS errors, then one entry that counts the ones left out."""
    if len(errors) <= MAX_FIELD_ERRORS:
        return errors
    left_out = len(errors) - MAX_FIELD_ERRORS
    more = FieldError(
        field="body",
        message=f"… and {left_out:,} more error{'s' if left_out != 1 else ''} "
        f"(only the first {MAX_FIELD_ERRORS} are listed)",
    )
    return [*errors[:MAX_FIELD_ERRORS], more]


class ValidationFailed(ApiError):
    status, code, title = 400, "validation_error", "Invalid request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        # Every 400 is built here, so no route can answer with an unbounded list.
        super().__init__(detail, errors=None if errors is None else capped(errors), headers=headers)

    @classmethod
    def of(cls, errors: list[FieldError]) -> "ValidationFailed":
        first = errors[0]
        detail = f"{first.field} {first.message}" if first.field else first.message
        if len(errors) > 1:
            more = len(errors) - 1
            detail += f" (and {more:,} more problem{'s' if more > 1 else ''})"
        return cls(detail, errors=errors)


class Unauthorized(ApiError):
    status, code, title = 401, "unauthorized", "Unauthorized"
    default_detail = "A valid API key is required: send it as `Authorization: Bearer <key>`."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="odeus"'})


class InsufficientScope(ApiError):
    status, code, title = 403, "insufficient_scope", "Forbidden"


class IntegrationForbidden(ApiError):
    status, code, title = 403, "integration_forbidden", "Forbidden"
    default_detail = "No access to this integration."


class BrowserRequestBlocked(ApiError):
    status, code, title = 403, "browser_request_blocked", "Forbidden"
    default_detail = (
        "Browser-origin requests are blocked to protect your API key: "
        "call this API from your server, never from a web page."
    )


class IntegrationNotFound(ApiError):
    status, code, title = 404, "integration_not_found", "Not found"
    default_detail = "Integration not found."


class TriggerNotFound(ApiError):
    status, code, title = 404, "trigger_not_found", "Not found"
    default_detail = "Trigger not found in this integration."


class SubscriptionNotFound(ApiError):
    status, code, title = 404, "subscription_not_found", "Not found"
    default_detail = "Subscription not found for this trigger."


class EventNotFound(ApiError):
    status, code, title = 404, "event_not_found", "Not found"
    default_detail = "Event not found for this subscription."


class NotFound(ApiError):
    status, code, title = 404, "not_found", "Not found"
    default_detail = "No such route."


class MethodNotAllowed(ApiError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"
    default_detail = "This route does not accept that method."


class TriggerNameConflict(ApiError):
    status, code, title = 409, "trigger_name_conflict", "Conflict"
    default_detail = "A trigger with this name already exists in the integration."


class PollInProgress(ApiError):
    status, code, title = 409, "poll_in_progress", "Conflict"
    default_detail = "A poll of this subscription is already running; its result will show in the poll history."


class SubscriptionDisabled(ApiError):
    status, code, title = 409, "subscription_disabled", "Conflict"
    default_detail = "The subscription is disabled; set its status to `active` to poll it again."


class EventNotDeliverable(ApiError):
    status, code, title = 409, "event_not_deliverable", "Conflict"
    default_detail = (
        "This event has no stored body to send: it was recorded by the seeding poll, which delivers nothing, "
        "or its body was removed by retention."
    )


class IdempotencyKeyInUse(ApiError):
    status, code, title = 409, "idempotency_key_in_use", "Conflict"
    default_detail = (
        "A request with this Idempotency-Key is still being processed; retry after it has finished."
    )

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class PayloadTooLarge(ApiError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class HeaderFieldsTooLarge(ApiError):
    status, code, title = 431, "header_fields_too_large", "Request header fields too large"


class UnsupportedMediaType(ApiError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"
    default_detail = "Send the body as JSON, with `Content-Type: application/json`."


class IdempotencyKeyReused(ApiError):
    status, code, title = 422, "idempotency_key_reused", "Unprocessable content"
    default_detail = (
        "This Idempotency-Key was already used for a different request; use a new key for a new request."
    )


class RateLimited(ApiError):
    status, code, title = 429, "rate_limited", "Too many requests"
    default_detail = "Too many requests; retry after the number of seconds in Retry-After."

    def __init__(self, detail: str | None = None, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})

    @classmethod
    def of(cls, quota: int, window_seconds: int, subject: str, retry_after: int) -> "RateLimited":
        unit = "second" if retry_after == 1 else "seconds"
        return cls(
            f"The rate limit of {quota} requests per {window_seconds} seconds {subject} is used up; "
            f"retry in {retry_after} {unit}.",
            retry_after,
        )


class InternalError(ApiError):
    status, code, title = 500, "internal_error", "Internal server error"
    default_detail = "An unexpected error occurred. Quote the requestId to support."


class ServiceUnavailable(ApiError):
    status, code, title = 503, "service_unavailable", "Service unavailable"
    default_detail = "The database is unreachable; retry shortly."

    def __init__(self, detail: str | None = None, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


def responses_for(*errors: type[ApiError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route, grouping the error classes by status."""
    by_status: dict[int, list[type[ApiError]]] = {}
    for err in errors:
        by_status.setdefault(err.status, []).append(err)
    return {
        status: {
            "description": "; ".join(f"`{e.code}`: {e.title}" for e in errs),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status, errs in sorted(by_status.items())
    }

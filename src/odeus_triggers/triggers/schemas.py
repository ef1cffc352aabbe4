"""Request and response bodies of the trigger routes."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from ..api.base_schemas import RequestModel, ResponseModel, TriggerType, display_name, line, name, text
from .poll_time import LOCAL_DATE_TIME_PATTERN

READ_ONLY = "Read-only: accepted and ignored, so that a trigger read from the API can be sent back."


class FieldType(StrEnum):
    TEXT = "TEXT"
    MULTI_LINE_TEXT = "MULTI_LINE_TEXT"
    NUMBER = "NUMBER"
    BOOLEAN = "BOOLEAN"
    SELECT = "SELECT"
    PASSWORD = "PASSWORD"
    VECTOR = "VECTOR"


class SelectOption(RequestModel):
    """One choice of a SELECT field: what is shown, and the value that polling code reads."""

    label: line(100, min_length=1)  # type: ignore[valid-type]
    value: line(200, min_length=1)  # type: ignore[valid-type]


# The SELECT rules are enforced by the server (triggers/rules.py, with the rest of the body's
# problems in one 400) and stated here in words: as an `anyOf` in the schema, their branches gave
# no types, and client generators dropped the model (openapi-python-client) or let any `options`
# through (openapi-typescript).
SELECT_RULES_DOC = (
    "A `SELECT` field needs `options`: 1 to 200 `{label, value}` objects whose values are unique "
    "within the field. Any other type (a missing or null `type` is `TEXT`) takes no `options` and no "
    "`allowMultiSelect: true` (`false` and null are accepted). The server answers 400 "
    "`validation_error` naming `inputFields[i].options` or `inputFields[i].allowMultiSelect` otherwise."
)


class InputFieldIn(RequestModel):
    __doc__ = "One input field of a trigger. " + SELECT_RULES_DOC

    label: name(100)  # type: ignore[valid-type]
    type: FieldType | None = Field(FieldType.TEXT, description="Defaults to `TEXT`.")
    description: text(500) | None = Field(None, description='Stored as "" when absent.')  # type: ignore[valid-type]
    placeholder: line(200) | None = None  # type: ignore[valid-type]
    required: bool | None = Field(False, description="Defaults to false.")
    options: list[SelectOption] | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Required for a `SELECT` field: 1 to 200 options, values unique within the field. "
        "Not allowed on any other type.",
    )
    allowMultiSelect: bool | None = Field(
        None,
        description="`SELECT` fields only, where it defaults to false; `true` on any other type is refused.",
    )
    slug: str | None = Field(None, description=READ_ONLY)


class TriggerIn(RequestModel):
    """The whole configuration of a trigger, for create and for update."""

    name: display_name(100)  # type: ignore[valid-type]
    description: text(90) | None = Field(None, description="Stored as \"\" when absent.")  # type: ignore[valid-type]
    pollingCode: text(1000) | None = Field(  # type: ignore[valid-type]
        None,
        description="Body of an async JavaScript function (top-level `await` and `return`). "
        "Absent, null or blank is stored as null.",
    )
    inputFields: list[InputFieldIn] | None = Field(None, max_length=50)
    id: str | None = Field(None, description=READ_ONLY)
    slug: str | None = Field(None, description=READ_ONLY)
    type: str | None = Field(None, description=READ_ONLY)
    createdAt: str | None = Field(None, description=READ_ONLY)
    updatedAt: str | None = Field(None, description=READ_ONLY)


class OptionOut(ResponseModel):
    label: str
    value: str


class InputFieldOut(ResponseModel):
    slug: str = Field(description="camelCase identifier of the label: `inputs.<slug>` in polling code.")
    label: str
    type: FieldType
    description: str
    placeholder: str | None
    required: bool
    options: list[OptionOut] | None = Field(description="null unless SELECT.")
    allowMultiSelect: bool | None = Field(description="null unless SELECT.")


class TriggerOut(ResponseModel):
    id: uuid.UUID
    name: str
    slug: str = Field(description="Assigned once at creation and kept on rename.")
    description: str
    type: TriggerType = Field(description="POLLING when pollingCode is set.")
    pollingCode: str | None
    inputFields: list[InputFieldOut]
    createdAt: datetime
    updatedAt: datetime


class TriggerEnvelope(ResponseModel):
    trigger: TriggerOut


class TriggerList(ResponseModel):
    triggers: list[TriggerOut] = Field(description="Oldest first; each can be sent back as it is to Update Trigger.")
    nextCursor: str | None = Field(description="Pass as `?cursor=` for the next page; null on the last page.")


class TriggerDeleted(ResponseModel):
    message: Literal["Trigger deleted"]
    id: uuid.UUID


# A date-time with an offset (`format: date-time`), or one without, which is taken as UTC.
PollTime = Annotated[
    str,
    WithJsonSchema({
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "string", "pattern": LOCAL_DATE_TIME_PATTERN},
        ]
    }),
]


class TestRunIn(RequestModel):
    """What a test run of the polling code sees; every field is optional."""

    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="Values of the trigger's input fields, keyed by field slug (`inputs.projectId` in the code).",
    )
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="Connection secrets, keyed by name (`secrets.API_TOKEN`). Used for this run only: "
        "never stored, never logged.",
    )
    lastPollTime: PollTime | None = Field(
        None,
        description="RFC 3339 date-time, given to the code as `lastPollTime` in UTC (one without an offset "
        "is taken as UTC; a moment outside years 0001 to 9999 in UTC is given as the nearest bound); "
        "null for a first poll.",
    )


class CodeErrorOut(ResponseModel):
    message: str = Field(description="What went wrong, e.g. `Error: Failed to fetch issues`.")
    line: int | None = Field(description="1-based line in the polling code, when known.")
    column: int | None = Field(description="1-based column in the polling code, when known.")


class TestRunOut(ResponseModel):
    ok: bool = Field(description="true when the code returned a valid array of events.")
    events: list[dict[str, Any]] = Field(description="The events the code returned; never stored.")
    logs: list[str] = Field(description="What the code wrote with `console.*`, in order.")
    error: CodeErrorOut | None = Field(description="Why the run failed; null when ok.")
    durationMs: float = Field(description="How long the run took in the sandbox, in milliseconds.")

"""Request and response bodies of the trigger routes."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from ..schemas import RequestModel, ResponseModel, line, name, text

READ_ONLY = "Read-only: accepted and ignored, so that a trigger read from the API can be sent back."


class FieldType(StrEnum):
    TEXT = "TEXT"
    MULTI_LINE_TEXT = "MULTI_LINE_TEXT"
    NUMBER = "NUMBER"
    BOOLEAN = "BOOLEAN"
    SELECT = "SELECT"
    PASSWORD = "PASSWORD"
    VECTOR = "VECTOR"


class TriggerType(StrEnum):
    POLLING = "POLLING"
    WEBHOOK = "WEBHOOK"


class SelectOption(RequestModel):
    label: line(100, min_length=1)  # type: ignore[valid-type]
    value: line(200, min_length=1)  # type: ignore[valid-type]


class InputFieldIn(RequestModel):
    label: name(100)  # type: ignore[valid-type]
    type: FieldType | None = Field(FieldType.TEXT, description="Defaults to TEXT.")
    description: text(500) | None = None  # type: ignore[valid-type]
    placeholder: line(200) | None = None  # type: ignore[valid-type]
    required: bool | None = Field(False, description="Defaults to false.")
    options: list[SelectOption] | None = Field(
        None, min_length=1, max_length=200, description="SELECT fields only, and required there."
    )
    allowMultiSelect: bool | None = Field(
        None, description="SELECT fields only; defaults to false there."
    )
    slug: str | None = Field(None, description=READ_ONLY)


class TriggerIn(RequestModel):
    """The whole configuration of a trigger, for create and for update."""

    name: name(100)  # type: ignore[valid-type]
    description: text(90) | None = Field(None, description="Stored as \"\" when absent.")
    pollingCode: text(1000) | None = Field(
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


class TriggerDeleted(ResponseModel):
    message: Literal["Trigger deleted"]
    id: uuid.UUID

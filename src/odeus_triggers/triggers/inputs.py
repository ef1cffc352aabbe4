"""A trigger as a test run needs it (its code and input fields, in one query), and the check of
the `inputs` of a test run against those fields.

Error messages name fields and option values, never a submitted value: an input may be a password.
"""

import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import FieldError, TriggerNotFound
from . import store
from .schemas import FieldType

_TEXT_TYPES = {FieldType.TEXT, FieldType.MULTI_LINE_TEXT, FieldType.PASSWORD}
_LISTED_OPTIONS = 10


@dataclass(frozen=True, slots=True)
class InputSpec:
    slug: str
    type: FieldType
    required: bool
    options: tuple[str, ...]
    multi: bool


@dataclass(frozen=True, slots=True)
class RunnableTrigger:
    polling_code: str | None
    inputs: tuple[InputSpec, ...]
    # The trigger's `updated_at`, which every change of its code or fields moves: a copy kept
    # elsewhere is still right exactly while the row still has this value.
    version: datetime | None = None


async def load_runnable(engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID) -> RunnableTrigger:
    rows = await store.runnable_rows(engine, integration_id, trigger_id)
    if not rows:
        raise TriggerNotFound()
    specs = tuple(
        InputSpec(
            slug=row.slug,
            type=FieldType(row.type),
            required=bool(row.required),
            options=tuple(str(o.get("value")) for o in row.options or ()),
            multi=bool(row.allow_multi_select),
        )
        for row in rows
        if row.slug is not None
    )
    return RunnableTrigger(rows[0].polling_code, specs, rows[0].updated_at)


def input_path(key: str) -> str:
    # A key that is not an identifier still gets a readable, unambiguous path.
    return f"inputs.{key}" if key.isidentifier() else f"inputs[{json.dumps(key[:100])}]"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _one_of(options: tuple[str, ...]) -> str:
    shown = ", ".join(json.dumps(o) for o in options[:_LISTED_OPTIONS])
    more = f" (or one of {len(options) - _LISTED_OPTIONS} more)" if len(options) > _LISTED_OPTIONS else ""
    return shown + more


def _type_error(spec: InputSpec, value: Any) -> str | None:
    if spec.type in _TEXT_TYPES:
        return None if isinstance(value, str) else "must be a string"
    if spec.type == FieldType.NUMBER:
        return None if _is_number(value) else "must be a finite number"
    if spec.type == FieldType.BOOLEAN:
        return None if isinstance(value, bool) else "must be true or false"
    if spec.type == FieldType.VECTOR:
        ok = isinstance(value, list) and all(_is_number(v) for v in value)
        return None if ok else "must be an array of finite numbers"
    if spec.multi:
        ok = isinstance(value, list) and all(isinstance(v, str) and v in spec.options for v in value)
        return None if ok else f"must be an array of option values: {_one_of(spec.options)}"
    ok = isinstance(value, str) and value in spec.options
    return None if ok else f"must be one of the option values: {_one_of(spec.options)}"


def input_errors(specs: tuple[InputSpec, ...], inputs: dict[str, Any]) -> list[FieldError]:
    """Every problem of `inputs`: missing required fields, wrong types, unknown slugs."""
    errors: list[FieldError] = []
    known = {spec.slug for spec in specs}
    for spec in specs:
        value = inputs.get(spec.slug)
        if value is None:
            if spec.required:
                errors.append(FieldError(field=input_path(spec.slug), message="is required"))
            continue
        problem = _type_error(spec, value)
        if problem:
            errors.append(FieldError(field=input_path(spec.slug), message=f"{problem} ({spec.type.value} field)"))
    unknown = [key for key in inputs if key not in known]
    errors.extend(FieldError(field=input_path(key), message="is not an input field of this trigger") for key in unknown)
    if unknown:
        # The field list is said once, on `inputs`: repeated for each of 24,000 unknown keys it made
        # a 121 MB answer. Second in the list: early enough that the cap on the number of errors
        # never drops it, and not first, which the problem's `detail` would repeat.
        hint = f"the fields are {', '.join(sorted(known))}" if known else "this trigger has no input fields"
        n = len(unknown)
        what = "1 key that is not an input field" if n == 1 else f"{n:,} keys that are not input fields"
        errors.insert(1, FieldError(field="inputs", message=f"has {what} of this trigger; {hint}"))
    return errors


def password_values_of(specs: tuple[InputSpec, ...], inputs: dict[str, Any]) -> list[str]:
    """The values given to the PASSWORD fields of `specs`, for redaction; anything not a string
    (`{"set": true}`, a wrong type that the checks refuse) is no secret."""
    slugs = {s.slug for s in specs if s.type == FieldType.PASSWORD}
    return [v for slug, v in inputs.items() if slug in slugs and isinstance(v, str)]

"""Reading triggers: one, or an integration's a page at a time, in the shape that create and
update answer with, so that a trigger read here can be sent back to Update Trigger as it is."""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..api.pagination import Page, encode_cursor
from ..errors import FieldError, TriggerNotFound, ValidationFailed
from ..timestamps import as_utc
from . import store
from .service import render


def render_field(row: Any) -> dict[str, Any]:
    return {
        "slug": row.slug,
        "label": row.label,
        "type": row.type,
        "description": row.description,
        "placeholder": row.placeholder,
        "required": bool(row.required),
        "options": row.options,
        "allowMultiSelect": row.allow_multi_select,
    }


def render_trigger(row: Any, field_rows: Sequence[Any]) -> dict[str, Any]:
    values = {"name": row.name, "description": row.description, "polling_code": row.polling_code, "type": row.type}
    fields = [render_field(f) for f in field_rows]
    return render(row.id, row.slug, values, fields, as_utc(row.created_at), as_utc(row.updated_at))["trigger"]


async def get_trigger(engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID) -> dict[str, Any]:
    found = await store.read_trigger(engine, integration_id, trigger_id)
    if found is None:
        raise TriggerNotFound()
    return {"trigger": render_trigger(*found)}


async def list_triggers(engine: AsyncEngine, integration_id: uuid.UUID, page: Page) -> dict[str, Any]:
    after = None
    if page.after is not None:
        try:
            after = (page.after.at, uuid.UUID(page.after.id))
        except ValueError:
            raise ValidationFailed.of([FieldError(field="cursor", message="is not a cursor returned by this list")]) from None
    rows, fields = await store.list_triggers(engine, integration_id, page.limit, after)
    shown = rows[: page.limit]
    return {
        "triggers": [render_trigger(row, fields[row.id]) for row in shown],
        "nextCursor": encode_cursor(shown[-1].created_at, shown[-1].id) if len(rows) > page.limit else None,
    }

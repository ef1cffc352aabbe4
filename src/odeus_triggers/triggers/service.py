"""Writing triggers: create (race-safe names and slugs), update, delete, and the response shape."""

import uuid
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import ServiceUnavailable, TriggerNotFound
from ..timestamps import as_utc, iso_z, utcnow
from . import store, store_pg
from .schemas import FieldType, TriggerIn, TriggerType
from .slugs import field_slug, trigger_slug, with_suffix

MAX_SLUG_ATTEMPTS = 200


def normalized_fields(body: TriggerIn) -> list[dict[str, Any]]:
    """Input fields as stored and returned: defaults applied, SELECT-only attributes nulled elsewhere."""
    out = []
    for f in body.inputFields or ():
        ftype = f.type or FieldType.TEXT
        is_select = ftype == FieldType.SELECT
        out.append(
            {
                "slug": field_slug(f.label),
                "label": f.label,
                "type": ftype.value,
                "description": f.description or "",
                "placeholder": f.placeholder,
                "required": bool(f.required),
                "options": [o.model_dump() for o in f.options] if is_select and f.options else None,
                "allowMultiSelect": bool(f.allowMultiSelect) if is_select else None,
            }
        )
    return out


def trigger_values(body: TriggerIn) -> dict[str, Any]:
    code = body.pollingCode if body.pollingCode and body.pollingCode.strip() else None
    return {
        "name": body.name,
        "description": body.description or "",
        "polling_code": code,
        "type": (TriggerType.POLLING if code else TriggerType.WEBHOOK).value,
    }


def render(
    trigger_id: uuid.UUID,
    slug: str,
    values: dict[str, Any],
    input_fields: list[dict[str, Any]],
    created_at: datetime,
    updated_at: datetime,
) -> dict[str, Any]:
    return {
        "trigger": {
            "id": str(trigger_id),
            "name": values["name"],
            "slug": slug,
            "description": values["description"],
            "type": values["type"],
            "pollingCode": values["polling_code"],
            "inputFields": input_fields,
            "createdAt": iso_z(created_at),
            "updatedAt": iso_z(updated_at),
        }
    }


def next_suffix(taken_slugs: list[str], base: str) -> int:
    """The smallest suffix above those already taken for `base`: a hint, the INSERT decides."""
    taken = [1]
    for slug in taken_slugs:
        tail = slug[len(base) + 1 :]
        if tail.isdigit():
            taken.append(int(tail))
    return max(taken) + 1


async def create_trigger(engine: AsyncEngine, integration_id: uuid.UUID, body: TriggerIn) -> dict[str, Any]:
    now = utcnow()
    trigger_id = uuid.uuid4()
    values = trigger_values(body)
    input_fields = normalized_fields(body)
    base = trigger_slug(body.name)
    create = store_pg.create_trigger if engine.dialect.name == "postgresql" else store.create_trigger
    slug = await create(engine, trigger_id, integration_id, values, input_fields, now, partial(_first_free_slug, base))
    return render(trigger_id, slug, values, input_fields, now, now)


async def _first_free_slug(base: str, insert_as: store.InsertAs, taken_slugs: store.TakenSlugs) -> str:
    """Insert under `base`, `base-2`, …: a slug collision tries the next suffix (a name collision
    raises 409 from inside `insert_as`)."""
    n = 1
    for _ in range(MAX_SLUG_ATTEMPTS):
        slug = with_suffix(base, n)
        if await insert_as(slug):
            return slug
        n = max(n + 1, next_suffix(await taken_slugs(base), base))
    raise ServiceUnavailable("Could not assign a unique slug; retry the request.", retry_after=1)


async def update_trigger(
    engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID, body: TriggerIn
) -> dict[str, Any]:
    """Replace the whole configuration; the id, slug and createdAt stay."""
    now = utcnow()
    values = trigger_values(body)
    input_fields = normalized_fields(body)
    row = await store.update_trigger(engine, integration_id, trigger_id, values, input_fields, now)
    if row is None:
        raise TriggerNotFound()
    return render(trigger_id, row.slug, values, input_fields, as_utc(row.created_at), now)


async def delete_trigger(engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID) -> None:
    if not await store.delete_trigger(engine, integration_id, trigger_id):
        raise TriggerNotFound()

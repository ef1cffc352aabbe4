"""Writing triggers: create (race-safe names and slugs), update, delete, and the response shape."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..db.sql import as_utc, upsert_insert, utcnow, violated_constraint
from ..errors import IntegrationNotFound, ServiceUnavailable, TriggerNameConflict, TriggerNotFound
from ..db.tables import NAME_INDEX, Trigger, TriggerInputField
from . import store_pg
from .schemas import FieldType, TriggerIn, TriggerType
from .slugs import field_slug, trigger_slug, with_suffix

triggers = Trigger.__table__
fields = TriggerInputField.__table__

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
            "createdAt": created_at.isoformat().replace("+00:00", "Z"),
            "updatedAt": updated_at.isoformat().replace("+00:00", "Z"),
        }
    }


def field_rows(trigger_id: uuid.UUID, input_fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.uuid4(),
            "trigger_id": trigger_id,
            "position": position,
            "slug": f["slug"],
            "label": f["label"],
            "type": f["type"],
            "description": f["description"],
            "placeholder": f["placeholder"],
            "required": f["required"],
            "options": f["options"],
            "allow_multi_select": f["allowMultiSelect"],
        }
        for position, f in enumerate(input_fields)
    ]


def raise_for_integrity(exc: IntegrityError) -> NoReturn:
    name = violated_constraint(exc)
    if NAME_INDEX in name or "lower(name)" in name:
        raise TriggerNameConflict() from None
    if "fk_triggers_integration_id" in name or "FOREIGN KEY" in name:
        raise IntegrationNotFound() from None
    raise exc


def next_suffix(taken_slugs: list[str], base: str) -> int:
    """The smallest suffix above those already taken for `base`: a hint, the INSERT decides."""
    taken = [1]
    for slug in taken_slugs:
        tail = slug[len(base) + 1 :]
        if tail.isdigit():
            taken.append(int(tail))
    return max(taken) + 1


async def _taken_slugs(conn: AsyncConnection, integration_id: uuid.UUID, base: str) -> list[str]:
    rows = await conn.execute(
        select(triggers.c.slug).where(
            triggers.c.integration_id == integration_id,
            (triggers.c.slug == base) | triggers.c.slug.like(f"{base}-%"),
        )
    )
    return [slug for (slug,) in rows]


async def create_trigger(engine: AsyncEngine, integration_id: uuid.UUID, body: TriggerIn) -> dict[str, Any]:
    now = utcnow()
    trigger_id = uuid.uuid4()
    values = trigger_values(body)
    input_fields = normalized_fields(body)
    base = trigger_slug(body.name)
    if engine.dialect.name == "postgresql":
        slug = await _create_on_postgres(engine, trigger_id, integration_id, base, values, input_fields, now)
    else:
        slug = await _create_generic(engine, trigger_id, integration_id, base, values, input_fields, now)
    return render(trigger_id, slug, values, input_fields, now, now)


async def _first_free_slug(
    base: str, insert_as: Callable[[str], Awaitable[bool]], taken_slugs: Callable[[], Awaitable[list[str]]]
) -> str:
    """Insert under `base`, `base-2`, …: a slug collision tries the next suffix (a name collision
    raises 409 from inside `insert_as`)."""
    n = 1
    for _ in range(MAX_SLUG_ATTEMPTS):
        slug = with_suffix(base, n)
        if await insert_as(slug):
            return slug
        n = max(n + 1, next_suffix(await taken_slugs(), base))
    raise ServiceUnavailable("Could not assign a unique slug; retry the request.", retry_after=1)


async def _create_on_postgres(
    engine: AsyncEngine, trigger_id: uuid.UUID, integration_id: uuid.UUID, base: str,
    values: dict[str, Any], input_fields: list[dict[str, Any]], now: datetime,
) -> str:
    columns = store_pg.field_columns(input_fields)

    async def work(driver: Any) -> str:
        return await _first_free_slug(
            base,
            lambda slug: store_pg.insert_once(driver, trigger_id, integration_id, slug, values, now, columns),
            lambda: store_pg.taken_slugs(driver, integration_id, base),
        )

    return await store_pg.with_driver(engine, work)


async def _create_generic(
    engine: AsyncEngine, trigger_id: uuid.UUID, integration_id: uuid.UUID, base: str,
    values: dict[str, Any], input_fields: list[dict[str, Any]], now: datetime,
) -> str:
    async with engine.begin() as conn:
        stmt_base = upsert_insert(conn, triggers)

        async def insert_as(slug: str) -> bool:
            stmt = (
                stmt_base.values(
                    id=trigger_id, integration_id=integration_id, slug=slug, created_at=now, updated_at=now, **values
                )
                .on_conflict_do_nothing(index_elements=["integration_id", "slug"])
                .returning(triggers.c.id)
            )
            try:
                return (await conn.execute(stmt)).first() is not None
            except IntegrityError as exc:
                raise_for_integrity(exc)

        slug = await _first_free_slug(base, insert_as, lambda: _taken_slugs(conn, integration_id, base))
        if input_fields:
            await conn.execute(insert(fields), field_rows(trigger_id, input_fields))
    return slug


async def update_trigger(
    engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID, body: TriggerIn
) -> dict[str, Any]:
    """Replace the whole configuration; the id, slug and createdAt stay."""
    now = utcnow()
    values = trigger_values(body)
    input_fields = normalized_fields(body)
    async with engine.begin() as conn:
        stmt = (
            update(triggers)
            .where(triggers.c.id == trigger_id, triggers.c.integration_id == integration_id)
            .values(updated_at=now, **values)
            .returning(triggers.c.slug, triggers.c.created_at)
        )
        try:
            row = (await conn.execute(stmt)).first()
        except IntegrityError as exc:
            raise_for_integrity(exc)
        if row is None:
            raise TriggerNotFound()
        await conn.execute(delete(fields).where(fields.c.trigger_id == trigger_id))
        if input_fields:
            await conn.execute(insert(fields), field_rows(trigger_id, input_fields))
    return render(trigger_id, row.slug, values, input_fields, as_utc(row.created_at), now)


async def delete_trigger(engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID) -> None:
    # The input fields go with it through the foreign key's ON DELETE CASCADE.
    async with engine.begin() as conn:
        result = await conn.execute(
            delete(triggers).where(triggers.c.id == trigger_id, triggers.c.integration_id == integration_id)
        )
    if result.rowcount == 0:
        raise TriggerNotFound()

"""Create Trigger on Postgres in one round trip.

The generic path (BEGIN, INSERT trigger, INSERT fields, COMMIT) costs four round trips and the
SQL layer's statement machinery on every request. Here one prepared statement inserts the trigger
and its input fields through data-modifying CTEs: a single statement is atomic on its own, so it
needs no explicit transaction, and the driver's prepared-statement cache makes it a single
Bind/Execute exchange. The rules are the same as the generic path's: a slug collision inserts
nothing and is retried with the next suffix; a name collision fails the statement (409).
"""

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import IntegrationNotFound, ServiceUnavailable, TriggerNameConflict
from ..db.tables import NAME_INDEX

CREATE_SQL = """
WITH new_trigger AS (
    INSERT INTO triggers (id, integration_id, name, slug, description, type, polling_code, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
    ON CONFLICT (integration_id, slug) DO NOTHING
    RETURNING id
), new_fields AS (
    INSERT INTO trigger_input_fields
        (id, trigger_id, position, slug, label, type, description, placeholder, required, options, allow_multi_select)
    SELECT f.id, t.id, f.position, f.slug, f.label, f.type, f.description, f.placeholder, f.required,
           f.options::jsonb, f.allow_multi_select
    FROM new_trigger t,
         unnest($9::uuid[], $10::int[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                $16::bool[], $17::text[], $18::bool[])
         AS f(id, position, slug, label, type, description, placeholder, required, options, allow_multi_select)
)
SELECT id FROM new_trigger
"""

NEXT_SUFFIX_SQL = """
SELECT slug FROM triggers WHERE integration_id = $1 AND (slug = $2 OR slug LIKE $2 || '-%')
"""

# SQLSTATE classes that mean the database, not the request, is at fault.
_OUTAGE_CLASSES = ("08", "53", "57")


def field_columns(input_fields: list[dict[str, Any]]) -> tuple[list[Any], ...]:
    columns: tuple[list[Any], ...] = tuple([] for _ in range(10))
    for position, f in enumerate(input_fields):
        row = (
            uuid.uuid4(), position, f["slug"], f["label"], f["type"], f["description"], f["placeholder"],
            f["required"], json.dumps(f["options"]) if f["options"] is not None else None, f["allowMultiSelect"],
        )
        for column, value in zip(columns, row):
            column.append(value)
    return columns


async def insert_once(
    driver: asyncpg.Connection,
    trigger_id: uuid.UUID,
    integration_id: uuid.UUID,
    slug: str,
    values: dict[str, Any],
    now: datetime,
    columns: tuple[list[Any], ...],
) -> bool:
    try:
        row = await driver.fetchrow(
            CREATE_SQL, trigger_id, integration_id, values["name"], slug, values["description"],
            values["type"], values["polling_code"], now, *columns,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == NAME_INDEX:
            raise TriggerNameConflict() from None
        raise
    except asyncpg.ForeignKeyViolationError:
        raise IntegrationNotFound() from None
    return row is not None


async def taken_slugs(driver: asyncpg.Connection, integration_id: uuid.UUID, base: str) -> list[str]:
    return [r["slug"] for r in await driver.fetch(NEXT_SUFFIX_SQL, integration_id, base)]


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, asyncpg.InterfaceError, TimeoutError)):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate.startswith(_OUTAGE_CLASSES)


async def with_driver(engine: AsyncEngine, work: Any) -> Any:
    """Run `work(asyncpg_connection)` on a pooled connection, outside any explicit transaction."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        try:
            return await work(raw.driver_connection)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            if not is_outage(exc):
                raise
            # The connection may be broken: drop it rather than hand it to the next request.
            await conn.invalidate()
            raise ServiceUnavailable() from None

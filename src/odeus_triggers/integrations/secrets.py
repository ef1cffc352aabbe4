"""Integration secrets: a merge into the stored set, the list of names, and the decrypted values
for the runtime. Each value is sealed to its row (`secretbox`), so the table never holds plain
text and a token copied to another integration or name does not open there."""

import uuid
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..db.runtime_tables import IntegrationSecret
from ..db.sql import upsert_insert
from ..db.tables import Integration
from ..errors import IntegrationNotFound, ValidationFailed
from ..secretbox import Keyring
from ..timestamps import iso_z, utcnow
from .secret_rules import MAX_SECRETS, too_many

integration_secrets = cast(Table, IntegrationSecret.__table__)
integrations = cast(Table, Integration.__table__)


def secret_context(integration_id: uuid.UUID, name: str) -> str:
    return f"integration-secret:{integration_id}:{name}"


def _render(rows: Any) -> list[dict[str, str]]:
    # Sorted here rather than in SQL: Postgres may collate by locale, SQLite by code point.
    return [{"name": r.name, "updatedAt": iso_z(r.updated_at)} for r in sorted(rows, key=lambda r: r.name)]


async def _summaries(conn: AsyncConnection, integration_id: uuid.UUID) -> list[dict[str, str]]:
    rows = await conn.execute(
        select(integration_secrets.c.name, integration_secrets.c.updated_at).where(
            integration_secrets.c.integration_id == integration_id
        )
    )
    return _render(rows.all())


async def list_secrets(engine: AsyncEngine, integration_id: uuid.UUID) -> list[dict[str, str]]:
    async with engine.connect() as conn:
        return await _summaries(conn, integration_id)


async def merge_secrets(
    engine: AsyncEngine, keyring: Keyring, integration_id: uuid.UUID, changes: Mapping[str, str | None]
) -> list[dict[str, str]]:
    """Apply a checked merge body in one transaction; 400 and nothing written if the merged set
    would exceed the limit. Returns the names after the merge."""
    now = utcnow()
    upserts = [
        {"integration_id": integration_id, "name": name, "token": keyring.seal(value, secret_context(integration_id, name)),
         "updated_at": now}
        for name, value in changes.items()
        if value is not None
    ]
    deletions = [name for name, value in changes.items() if value is None]
    async with engine.begin() as conn:
        # The integration's row is the lock that serializes merges on Postgres, so that two
        # concurrent bodies cannot each pass the count alone and together exceed it. SQLite renders
        # no FOR UPDATE, and its BEGIN IMMEDIATE already serializes writers.
        locked = await conn.scalar(
            select(integrations.c.id).where(integrations.c.id == integration_id).with_for_update()
        )
        if locked is None:  # deleted since the access check
            raise IntegrationNotFound()
        if deletions:
            await conn.execute(
                delete(integration_secrets).where(
                    integration_secrets.c.integration_id == integration_id,
                    integration_secrets.c.name.in_(deletions),
                )
            )
        if upserts:
            insert = upsert_insert(conn, integration_secrets).values(upserts)
            await conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["integration_id", "name"],
                    set_={"token": insert.excluded.token, "updated_at": insert.excluded.updated_at},
                )
            )
        summaries = await _summaries(conn, integration_id)
        if len(summaries) > MAX_SECRETS:
            raise ValidationFailed.of([too_many(len(summaries))])  # leaving the block rolls back
    return summaries


async def integration_secret_values(
    conn_or_engine: AsyncConnection | AsyncEngine, keyring: Keyring, integration_id: uuid.UUID
) -> dict[str, str]:
    """The integration's secrets, decrypted, for the code that runs with them. Raises SealBroken
    if a token does not open for its row (a wrong keyring, or a token copied from elsewhere)."""
    query = select(integration_secrets.c.name, integration_secrets.c.token).where(
        integration_secrets.c.integration_id == integration_id
    )
    if isinstance(conn_or_engine, AsyncEngine):
        async with conn_or_engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    else:
        rows = (await conn_or_engine.execute(query)).all()
    return {name: keyring.open(token, secret_context(integration_id, name)) for name, token in rows}

"""Operator actions on workspaces and keys, used by the CLI."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..db.tables import ApiKey, Workspace
from ..timestamps import iso_z, utcnow
from . import keys
from .scopes import Scope


class AdminError(Exception):
    """A problem the operator can fix; the CLI prints it as one line."""


@dataclass(frozen=True)
class NewKey:
    id: uuid.UUID
    key: str
    prefix: str
    workspace_id: uuid.UUID
    scopes: list[str]
    expires_at: datetime | None


async def ensure_workspace(engine: AsyncEngine, name: str) -> uuid.UUID:
    async with engine.begin() as conn:
        existing = await conn.scalar(select(Workspace.id).where(Workspace.name == name))
        if existing is not None:
            return existing
        workspace_id = uuid.uuid4()
        try:
            await conn.execute(insert(Workspace).values(id=workspace_id, name=name, created_at=utcnow()))
        except IntegrityError:
            raise AdminError(f"workspace {name!r} was created concurrently; run the command again") from None
        return workspace_id


async def find_workspace(conn: AsyncConnection, name_or_id: str) -> uuid.UUID:
    condition = Workspace.name == name_or_id
    try:
        condition = or_(condition, Workspace.id == uuid.UUID(name_or_id))
    except ValueError:
        pass
    found = await conn.scalar(select(Workspace.id).where(condition))
    if found is None:
        raise AdminError(f"no workspace named or with id {name_or_id!r}")
    return found


async def create_key(
    engine: AsyncEngine, workspace: str | uuid.UUID, scopes: list[Scope], expires_in_days: int | None = None
) -> NewKey:
    key = keys.generate_key()
    now = utcnow()
    expires_at = now + timedelta(days=expires_in_days) if expires_in_days else None
    scope_names = sorted({s.value for s in scopes})
    async with engine.begin() as conn:
        workspace_id = workspace if isinstance(workspace, uuid.UUID) else await find_workspace(conn, workspace)
        key_id = uuid.uuid4()
        await conn.execute(
            insert(ApiKey).values(
                id=key_id,
                workspace_id=workspace_id,
                digest=keys.digest(key),
                prefix=keys.display_prefix(key),
                scopes=scope_names,
                created_at=now,
                expires_at=expires_at,
            )
        )
    return NewKey(key_id, key, keys.display_prefix(key), workspace_id, scope_names, expires_at)


async def list_keys(engine: AsyncEngine, workspace: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        workspace_id = await find_workspace(conn, workspace)
        rows = await conn.execute(
            select(ApiKey.id, ApiKey.prefix, ApiKey.scopes, ApiKey.created_at, ApiKey.expires_at, ApiKey.revoked_at)
            .where(ApiKey.workspace_id == workspace_id)
            .order_by(ApiKey.created_at)
        )
        return [
            {
                "id": str(r.id),
                "prefix": r.prefix,
                "scopes": r.scopes,
                "createdAt": iso_z(r.created_at),
                "expiresAt": iso_z(r.expires_at) if r.expires_at else None,
                "revokedAt": iso_z(r.revoked_at) if r.revoked_at else None,
            }
            for r in rows
        ]


async def revoke_key(engine: AsyncEngine, id_or_prefix: str) -> str:
    try:
        condition = ApiKey.id == uuid.UUID(id_or_prefix)
    except ValueError:
        if len(id_or_prefix) < 8:
            raise AdminError("give the key's id or a prefix of at least 8 characters") from None
        condition = ApiKey.prefix.startswith(id_or_prefix, autoescape=True)
    async with engine.begin() as conn:
        matches = (await conn.execute(select(ApiKey.id, ApiKey.revoked_at).where(condition))).all()
        if not matches:
            raise AdminError(f"no API key matches {id_or_prefix!r}")
        if len(matches) > 1:
            raise AdminError(f"{len(matches)} keys match {id_or_prefix!r}; give the key's id")
        key_id, revoked_at = matches[0]
        if revoked_at is None:
            await conn.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=utcnow()))
    return str(key_id)

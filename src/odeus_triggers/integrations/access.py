"""Resolving `{integrationId}` for the caller: 400 if malformed, 404 if absent, 403 if not theirs."""

import time
import uuid
from typing import Annotated

from cachetools import TTLCache
from fastapi import Depends, Path, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..auth.caller import Caller
from ..errors import FieldError, IntegrationForbidden, IntegrationNotFound, ValidationFailed
from ..db.tables import Integration

UUID_SCHEMA = {"format": "uuid"}


def parse_uuid(value: str, field: str) -> uuid.UUID:
    try:
        # Only the canonical 36-character form: uuid.UUID also takes braces, URNs and bare hex.
        if len(value) != 36:
            raise ValueError
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed.of([FieldError(field=field, message="must be a UUID")]) from None


async def integration_id_param(
    integrationId: Annotated[str, Path(description="UUID of the integration", json_schema_extra=UUID_SCHEMA)],
) -> uuid.UUID:
    return parse_uuid(integrationId, "integrationId")


IntegrationId = Annotated[uuid.UUID, Depends(integration_id_param)]


class IntegrationDirectory:
    """Which workspace owns an integration. Ownership never changes, so positive answers are cached."""

    def __init__(self, engine: AsyncEngine, ttl: float = 60.0) -> None:
        self._engine = engine
        self._owners: TTLCache[uuid.UUID, uuid.UUID] = TTLCache(maxsize=50_000, ttl=ttl, timer=time.monotonic)

    async def owner_of(self, integration_id: uuid.UUID) -> uuid.UUID | None:
        owner = self._owners.get(integration_id)
        if owner is None:
            async with self._engine.connect() as conn:
                owner = await conn.scalar(
                    select(Integration.workspace_id).where(Integration.id == integration_id)
                )
            if owner is not None:
                self._owners[integration_id] = owner
        return owner



def check_access(owner: uuid.UUID | None, workspace_id: uuid.UUID) -> None:
    """404 for an integration that does not exist, 403 for one of another workspace."""
    if owner is None:
        raise IntegrationNotFound()
    if owner != workspace_id:
        raise IntegrationForbidden()


async def authorize_integration(caller: Caller, integration_id: uuid.UUID, request: Request) -> uuid.UUID:
    check_access(await request.app.state.integrations.owner_of(integration_id), caller.workspace_id)
    return integration_id

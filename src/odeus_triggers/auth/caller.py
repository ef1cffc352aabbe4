"""Resolving the caller from the Bearer key: workspace and scopes."""

import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from cachetools import TTLCache
from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.tables import ApiKey
from ..errors import InsufficientScope, Unauthorized
from . import keys
from .scopes import Scope


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: uuid.UUID
    workspace_id: uuid.UUID
    scopes: frozenset[str]
    expires_at: datetime | None

    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= datetime.now(UTC)


_LOOKUP = select(ApiKey.id, ApiKey.workspace_id, ApiKey.scopes, ApiKey.expires_at).where(
    ApiKey.revoked_at.is_(None)
)


class KeyVerifier:
    """Looks keys up by digest, trusting a verified key for `ttl` seconds.

    The cache bounds how long a revoked key keeps working: at most `ttl` seconds, per process.
    """

    def __init__(self, engine: AsyncEngine, ttl: float) -> None:
        self._engine = engine
        self._cache: TTLCache[str, Caller] | None = (
            TTLCache(maxsize=10_000, ttl=ttl, timer=time.monotonic) if ttl > 0 else None
        )

    def cached(self, key: str) -> Caller | None:
        """The caller of a key verified within the last `ttl` seconds, without touching the database."""
        if self._cache is None or not keys.is_well_formed(key):
            return None
        caller = self._cache.get(keys.digest(key))
        return None if caller is None or caller.is_expired() else caller

    async def verify(self, key: str) -> Caller | None:
        if not keys.is_well_formed(key):
            return None
        digest = keys.digest(key)
        caller = self._cache.get(digest) if self._cache is not None else None
        if caller is None:
            async with self._engine.connect() as conn:
                row = (await conn.execute(_LOOKUP.where(ApiKey.digest == digest))).first()
            if row is None:
                return None
            expires_at = row.expires_at
            if expires_at is not None and expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=UTC)  # SQLite returns naive datetimes
            caller = Caller(row.id, row.workspace_id, frozenset(row.scopes), expires_at)
            if self._cache is not None:
                self._cache[digest] = caller
        return None if caller.is_expired() else caller


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


async def get_caller(request: Request) -> Caller:
    state = request.scope.get("state", {})
    if "key_error" in state:
        # The rate limiter's lookup failed (database down): fail here, where the handlers map it.
        raise state["key_error"]
    if state.get("key_checked"):
        # The rate limiter has already verified the key; looking it up again would cost a query.
        caller = state.get("caller")
    else:
        token = bearer_token(request)
        caller = await request.app.state.key_verifier.verify(token) if token else None
    if caller is None:
        raise Unauthorized()
    # The rate limiter and the access log read the workspace from here.
    request.state.caller = caller
    return caller


def require_scope(*accepted: Scope) -> Callable[[Caller], Coroutine[Any, Any, Caller]]:
    names = " or ".join(s.value for s in accepted)

    async def dependency(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
        if caller.scopes.isdisjoint(accepted):
            raise InsufficientScope(f"This API key lacks the {names} scope.")
        return caller

    return dependency


IntegrationCaller = Annotated[Caller, Depends(require_scope(Scope.INTEGRATION_API))]
ReaderCaller = Annotated[
    Caller, Depends(require_scope(Scope.INTEGRATION_API, Scope.ASSISTANT_API))
]

"""Idempotency records: claiming a key, replaying a finished request, releasing a failed one.

Each step is its own short transaction, so that a claim is visible to concurrent retries at once
and no transaction stays open while the guarded work runs.
"""

import hashlib
import json
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.sql import upsert_insert
from ..db.tables import IdempotencyRecord
from ..errors import IdempotencyKeyInUse, IdempotencyKeyReused
from ..secretbox import Keyring
from ..timestamps import as_utc, utcnow

log = logging.getLogger("odeus_triggers.idempotency")

# Declarative types __table__ as any FromClause; this is a Table (update/delete need one).
records = cast(Table, IdempotencyRecord.__table__)

KEY_LIFETIME = timedelta(hours=24)
# No request runs this long (statements time out after seconds), so an older claim was left by a
# process that died mid-request: the next retry takes it over instead of getting 409 forever.
ABANDONED_AFTER = timedelta(seconds=60)
PURGE_PROBABILITY = 0.01
PURGE_BATCH = 100
CLAIM_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Claim:
    """The right to run the request; `id` identifies this claim, not just the key."""

    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: str


def fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 of the method, the path (without its base) and the body as canonical JSON.

    Canonical JSON (sorted keys, no insignificant white space) makes a retry that re-serialises the
    same object match; a body that is not JSON is hashed as sent.
    """
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def response_context(record_id: uuid.UUID) -> str:
    return f"idempotency-response:{record_id}"


class IdempotencyStore:
    def __init__(
        self,
        engine: AsyncEngine,
        keyring: Keyring,
        *,
        lifetime: timedelta = KEY_LIFETIME,
        abandoned_after: timedelta = ABANDONED_AFTER,
        purge_probability: float = PURGE_PROBABILITY,
    ) -> None:
        self._engine = engine
        self._keyring = keyring
        self.lifetime = lifetime
        self.abandoned_after = abandoned_after
        self.purge_probability = purge_probability

    async def claim(self, api_key_id: uuid.UUID, key: str, fingerprint: str) -> Claim | Replay:
        """Claim `key` for a request, or return the finished response to replay.

        Raises IdempotencyKeyReused for another request's key and IdempotencyKeyInUse while the
        first request is still running.
        """
        if random.random() < self.purge_probability:
            await self.purge_expired()
        for _ in range(CLAIM_ATTEMPTS):
            outcome = await self._try_claim(api_key_id, key, fingerprint)
            if outcome is not None:
                return outcome
        # The record kept vanishing under us: its owners keep failing; let the client retry later.
        raise IdempotencyKeyInUse()

    async def _try_claim(self, api_key_id: uuid.UUID, key: str, fingerprint: str) -> Claim | Replay | None:
        now = utcnow()
        claim_id = uuid.uuid4()
        fresh = {
            "id": claim_id,
            "fingerprint": fingerprint,
            "status": None,
            "response_body": None,
            "created_at": now,
            "expires_at": now + self.lifetime,
        }
        async with self._engine.begin() as conn:
            inserted = (
                await conn.execute(
                    upsert_insert(conn, records)
                    .values(api_key_id=api_key_id, key=key, **fresh)
                    .on_conflict_do_nothing(index_elements=["api_key_id", "key"])
                    .returning(records.c.id)
                )
            ).first()
            if inserted is not None:
                return Claim(claim_id)
            # The row lock serialises takeovers on Postgres; SQLite's BEGIN IMMEDIATE already does.
            row = (
                await conn.execute(
                    select(records)
                    .where(records.c.api_key_id == api_key_id, records.c.key == key)
                    .with_for_update()
                )
            ).first()
            if row is None:
                return None  # released between our INSERT and SELECT: try again
            expired = as_utc(row.expires_at) <= now
            if not expired and row.fingerprint != fingerprint:
                raise IdempotencyKeyReused()
            abandoned = row.status is None and as_utc(row.created_at) <= now - self.abandoned_after
            if expired or abandoned:
                # A new id makes the previous claimant's late complete() or release() a no-op.
                await conn.execute(update(records).where(records.c.id == row.id).values(**fresh))
                return Claim(claim_id)
            if row.status is None:
                raise IdempotencyKeyInUse()
            body = self._keyring.open(row.response_body, response_context(row.id)) if row.response_body else ""
            return Replay(row.status, body)

    async def complete(self, claim: Claim, status: int, body: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(records)
                .where(records.c.id == claim.id, records.c.status.is_(None))
                # Sealed: a create's answer can hold a secret shown once (a subscription's signing secret).
                .values(status=status, response_body=self._keyring.seal(body, response_context(claim.id)))
            )

    async def release(self, claim: Claim) -> None:
        """Forget an unfinished claim, so that a retry runs the request again."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(records).where(records.c.id == claim.id, records.c.status.is_(None)))

    async def purge_expired(self, limit: int = PURGE_BATCH) -> int:
        """Delete up to `limit` expired records; best effort, never fails the request."""
        expired = (
            select(records.c.id)
            .where(records.c.expires_at <= utcnow())
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(delete(records).where(records.c.id.in_(expired.scalar_subquery())))
        except Exception:
            log.warning("purging expired idempotency records failed", exc_info=True)
            return 0
        return result.rowcount

"""The sealed values of the database as a whole: the keyring's canary, and re-encryption under
the newest key (`odeus-triggers secrets rotate`)."""

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..secretbox import Keyring, KeyringError, SealBroken
from ..timestamps import utcnow
from .runtime_tables import EncryptionCanary, IntegrationSecret, Subscription, SubscriptionSecret
from .sql import upsert_insert
from .tables import IdempotencyRecord

CANARY_CONTEXT = "canary"
CANARY_VALUE = "odeus-triggers keyring canary"

# Rows read and rewritten per round trip: memory stays flat however many secrets there are.
BATCH_SIZE = 500

canary = cast(Table, EncryptionCanary.__table__)
integration_secrets = cast(Table, IntegrationSecret.__table__)
subscription_secrets = cast(Table, SubscriptionSecret.__table__)
subscriptions = cast(Table, Subscription.__table__)
idempotency_records = cast(Table, IdempotencyRecord.__table__)


async def verify_canary(engine: AsyncEngine, keyring: Keyring) -> None:
    """Write the canary under the newest key at first start; afterwards, refuse a keyring that
    cannot open it, before anything is sealed with a key that nobody else has."""
    async with engine.begin() as conn:
        await conn.execute(
            upsert_insert(conn, canary)
            .values(id=1, token=keyring.seal(CANARY_VALUE, CANARY_CONTEXT), created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["id"])
        )
        token = await conn.scalar(select(canary.c.token).where(canary.c.id == 1))
    try:
        keyring.open(cast(str, token), CANARY_CONTEXT)
    except SealBroken:
        raise KeyringError(
            "none of the keys in the keyring can decrypt the secrets stored in this database (its canary "
            "value); set ODEUS_ENCRYPTION_KEYS to include the key they were written with"
        ) from None


async def _batches(conn: AsyncConnection, table: Table, key_columns: Sequence[str], *columns: str) -> Any:
    """The rows of `table` in primary-key order, BATCH_SIZE at a time, locked until the commit.

    The lock matters on Postgres: a secret written between this read and the rewrite would
    otherwise be overwritten with the rotation of its old value. SQLite has no FOR UPDATE (the
    dialect drops it) and needs none: the engine begins with BEGIN IMMEDIATE, so this transaction
    holds the only write lock from its start."""
    keys = [table.c[k] for k in key_columns]
    last: Sequence[Any] | None = None
    while True:
        query = select(*keys, *(table.c[c] for c in columns)).order_by(*keys).limit(BATCH_SIZE).with_for_update()
        if last is not None:
            query = query.where(tuple_(*keys) > tuple_(*last))
        rows = (await conn.execute(query)).all()
        if not rows:
            return
        yield rows
        if len(rows) < BATCH_SIZE:
            return
        last = rows[-1][: len(keys)]


def _broken(table: Table, column: str, key_columns: Sequence[str], row: Sequence[Any]) -> SealBroken:
    # Which row, never what it holds: the operator restores it or deletes it, then rotates again.
    where = ", ".join(f"{k}={row[i]}" for i, k in enumerate(key_columns))
    return SealBroken(f"a value in {table.name}.{column} ({where}) opens with none of the configured keys")


async def _rotate_column(conn: AsyncConnection, keyring: Keyring, table: Table, key_columns: Sequence[str],
                         column: str) -> int:
    count = 0
    statement = (
        update(table)
        .where(and_(*(table.c[k] == bindparam(f"k_{k}") for k in key_columns)))
        .values({column: bindparam("v_token")})
    )
    async for rows in _batches(conn, table, key_columns, column):
        params = []
        for row in rows:
            if row[-1] is None:  # an idempotency record still in flight has no answer yet
                continue
            try:
                token = keyring.rotate(row[-1])
            except SealBroken:
                raise _broken(table, column, key_columns, row) from None
            params.append({**{f"k_{k}": row[i] for i, k in enumerate(key_columns)}, "v_token": token})
        if params:
            await conn.execute(statement, params)
        count += len(params)
    return count


def _rotated(keyring: Keyring, token: str, where: str, sub_id: Any) -> str:
    try:
        return keyring.rotate(token)
    except SealBroken:
        raise _broken(subscriptions, where, ["id"], [sub_id]) from None


async def _rotate_subscriptions(conn: AsyncConnection, keyring: Keyring) -> int:
    """The signing secrets and the PASSWORD inputs of each subscription, in one pass and one
    UPDATE per row: the scheduler writes these rows too, so they are locked once, briefly."""
    count = 0
    columns = subscriptions.c
    statement = update(subscriptions).where(columns.id == bindparam("k_id")).values(
        signing_secret=bindparam("v_signing", type_=columns.signing_secret.type),
        previous_signing_secret=bindparam("v_previous", type_=columns.previous_signing_secret.type),
        sealed_inputs=bindparam("v_inputs", type_=columns.sealed_inputs.type),
    )
    async for rows in _batches(conn, subscriptions, ["id"], "signing_secret", "previous_signing_secret", "sealed_inputs"):
        params = []
        for sub_id, signing, previous, sealed in rows:
            row = {"k_id": sub_id, "v_signing": signing, "v_previous": previous, "v_inputs": sealed}
            if signing is not None:
                row["v_signing"] = _rotated(keyring, signing, "signing_secret", sub_id)
                count += 1
            if previous is not None:
                row["v_previous"] = _rotated(keyring, previous, "previous_signing_secret", sub_id)
                count += 1
            if sealed:
                row["v_inputs"] = {
                    slug: _rotated(keyring, token, f"sealed_inputs[{slug}]", sub_id) for slug, token in sealed.items()
                }
                count += len(sealed)
            params.append(row)
        if params:
            await conn.execute(statement, params)
    return count


async def rotate_all(engine: AsyncEngine, keyring: Keyring) -> int:
    """Re-encrypt every sealed value under the newest key, in one transaction; returns how many
    secrets (the canary aside).

    One transaction, so that a value that no key opens stops the rotation with nothing half done,
    and the count printed is what was committed. Its cost: rotated rows stay locked until the end,
    so writes to them (a secret being set, a subscription's poll state) wait for the rotation.
    The rows are read in batches, so memory does not grow with the table.
    The canary is rotated too, so that the old key can then be dropped from the keyring."""
    async with engine.begin() as conn:
        await _rotate_column(conn, keyring, canary, ["id"], "token")
        count = await _rotate_column(conn, keyring, integration_secrets, ["integration_id", "name"], "token")
        count += await _rotate_column(conn, keyring, subscription_secrets, ["subscription_id", "name"], "token")
        count += await _rotate_subscriptions(conn, keyring)
        # Stored answers of idempotent creates (a subscription's holds its signing secret), kept 24 h:
        # sealed too, but not counted among the secrets.
        await _rotate_column(conn, keyring, idempotency_records, ["id"], "response_body")
    return count

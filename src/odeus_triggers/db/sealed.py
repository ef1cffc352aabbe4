"""The sealed values of the database as a whole: the keyring's canary, and re-encryption under
the newest key (`odeus-triggers secrets rotate`)."""

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..secretbox import Keyring, KeyringError, SealBroken
from ..timestamps import utcnow
from .runtime_tables import EncryptionCanary, IntegrationSecret, Subscription, SubscriptionSecret
from .sql import upsert_insert

CANARY_CONTEXT = "canary"
CANARY_VALUE = "odeus-triggers keyring canary"

canary = cast(Table, EncryptionCanary.__table__)
integration_secrets = cast(Table, IntegrationSecret.__table__)
subscription_secrets = cast(Table, SubscriptionSecret.__table__)
subscriptions = cast(Table, Subscription.__table__)


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


async def _rotate_column(conn: AsyncConnection, keyring: Keyring, table: Table, key_columns: Iterable[str], column: str) -> int:
    keys = [table.c[k] for k in key_columns]
    rows = (await conn.execute(select(*keys, table.c[column]).where(table.c[column].is_not(None)))).all()
    for row in rows:
        where = and_(*(c == row[i] for i, c in enumerate(keys)))
        await conn.execute(update(table).where(where).values({column: keyring.rotate(row[-1])}))
    return len(rows)


async def _rotate_sealed_inputs(conn: AsyncConnection, keyring: Keyring) -> int:
    count = 0
    rows = (await conn.execute(select(subscriptions.c.id, subscriptions.c.sealed_inputs))).all()
    for sub_id, sealed in rows:
        if not sealed:
            continue
        rotated: dict[str, Any] = {slug: keyring.rotate(token) for slug, token in sealed.items()}
        await conn.execute(update(subscriptions).where(subscriptions.c.id == sub_id).values(sealed_inputs=rotated))
        count += len(rotated)
    return count


async def rotate_all(engine: AsyncEngine, keyring: Keyring) -> int:
    """Re-encrypt every sealed value under the newest key, in one transaction; returns how many
    secrets (the canary aside).

    One transaction, so that a value that no key opens stops the rotation with nothing half done.
    The canary is rotated too, so that the old key can then be dropped from the keyring."""
    async with engine.begin() as conn:
        await _rotate_column(conn, keyring, canary, ["id"], "token")
        count = await _rotate_column(conn, keyring, integration_secrets, ["integration_id", "name"], "token")
        count += await _rotate_column(conn, keyring, subscription_secrets, ["subscription_id", "name"], "token")
        count += await _rotate_column(conn, keyring, subscriptions, ["id"], "signing_secret")
        count += await _rotate_column(conn, keyring, subscriptions, ["id"], "previous_signing_secret")
        count += await _rotate_sealed_inputs(conn, keyring)
    return count

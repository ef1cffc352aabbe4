"""Every secret value one poll of a subscription may meet, for redaction (RUNTIME.md, "Secrets":
integration and subscription secrets, PASSWORD inputs and signing secrets)."""

import uuid
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..db.runtime_tables import Subscription, SubscriptionSecret
from ..integrations.secrets import integration_secret_values
from ..secretbox import Keyring
from .input_values import password_values
from .seal_contexts import secret_context, signing_context

_subscriptions = cast(Table, Subscription.__table__)
_subscription_secrets = cast(Table, SubscriptionSecret.__table__)


async def subscription_secret_values(
    conn_or_engine: AsyncConnection | AsyncEngine, keyring: Keyring, subscription_id: uuid.UUID
) -> frozenset[str]:
    """Every secret value one poll of this subscription may meet, for the runtime to pass to
    `remember_secrets` (inside `secret_scope()`) before it runs the code, logs, or stores an
    error: the integration's secrets, the subscription's own, its PASSWORD inputs, and its signing
    secrets (the current one, and the previous one while it still signs).

    Empty if the subscription is gone. Raises SealBroken, as the code could not run either, when
    a token does not open. The previous signing secret is assumed to be sealed for the same
    context as the current one (`signing-secret:<id>`), as no code rotates it yet.
    """
    if isinstance(conn_or_engine, AsyncEngine):
        async with conn_or_engine.connect() as conn:
            return await subscription_secret_values(conn, keyring, subscription_id)
    conn = conn_or_engine
    row = (await conn.execute(
        select(
            _subscriptions.c.integration_id, _subscriptions.c.sealed_inputs,
            _subscriptions.c.signing_secret, _subscriptions.c.previous_signing_secret,
        ).where(_subscriptions.c.id == subscription_id)
    )).first()
    if row is None:
        return frozenset()
    values: set[str] = set((await integration_secret_values(conn, keyring, row.integration_id)).values())
    own = await conn.execute(
        select(_subscription_secrets.c.name, _subscription_secrets.c.token).where(
            _subscription_secrets.c.subscription_id == subscription_id
        )
    )
    values.update(keyring.open(token, secret_context(subscription_id, name)) for name, token in own)
    values.update(password_values(keyring, subscription_id, row.sealed_inputs or {}).values())
    for token in (row.signing_secret, row.previous_signing_secret):
        if token is not None:
            values.add(keyring.open(token, signing_context(subscription_id)))
    return frozenset(values)

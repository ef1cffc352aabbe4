"""Tables of the trigger runtime (RUNTIME.md): secrets, subscriptions, their poll history, the
events found (the dedupe set and the delivery outbox in one), and delivery attempts.

Every secret is a MultiFernet token sealed to its row (`secretbox`), never plain text. The hot
queries of the runtime each have an index: due subscriptions (partial, active only), pending
events (partial, pending only), and the newest-first listings of one subscription.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from .engine import Base
from .tables import JSONType, Timestamp

# The statuses of RUNTIME.md: the scheduler polls only `active`; delivery stops only at `disabled`.
ACTIVE = "active"
PENDING = "pending"


class EncryptionCanary(Base):
    """One value sealed under the newest key at first start: if no configured key opens it, the
    keyring is wrong, and the service refuses to start rather than fail on every secret later."""

    __tablename__ = "encryption_canary"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class IntegrationSecret(Base):
    __tablename__ = "integration_secrets"

    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        # The scheduler's claim: the oldest due active subscriptions first.
        Index(
            "ix_subscriptions_due", "next_poll_at",
            postgresql_where=text("status = 'active'"), sqlite_where=text("status = 'active'"),
        ),
        # Listing a trigger's subscriptions, oldest first, by cursor.
        Index("ix_subscriptions_trigger_id_created_at_id", "trigger_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # Copied from the trigger, so that the runtime knows the tenant (fairness) and the API checks
    # access without a join. Deleting a workspace, integration or trigger cascades through triggers.
    workspace_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    integration_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    trigger_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("triggers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    paused_reason: Mapped[str | None] = mapped_column(String(32))
    # Input values except PASSWORD ones, which are sealed one by one in `sealed_inputs` (slug → token).
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType)
    sealed_inputs: Mapped[dict[str, str]] = mapped_column(JSONType)
    webhook_url: Mapped[str] = mapped_column(String(2048))
    interval_seconds: Mapped[int] = mapped_column(Integer)
    backfill_since: Mapped[datetime | None] = mapped_column(Timestamp)
    signing_secret: Mapped[str] = mapped_column(Text)
    # The secret before the last rotation, which also signs until `previous_signing_secret_until`.
    previous_signing_secret: Mapped[str | None] = mapped_column(Text)
    previous_signing_secret_until: Mapped[datetime | None] = mapped_column(Timestamp)

    # Polling state, written by the scheduler in the poll's fenced transaction.
    last_poll_time: Mapped[datetime | None] = mapped_column(Timestamp)
    seeded_at: Mapped[datetime | None] = mapped_column(Timestamp)
    next_poll_at: Mapped[datetime | None] = mapped_column(Timestamp)
    lease_epoch: Mapped[int] = mapped_column(Integer)
    # Set by a claim, cleared by the completion: while in the future, a poll is running.
    lease_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # The due time the last claim replaced with its lease: the scheduling lag is measured from it.
    claimed_due_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_polled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_succeeded_at: Mapped[datetime | None] = mapped_column(Timestamp)
    consecutive_failures: Mapped[int] = mapped_column(Integer)
    failing_since: Mapped[datetime | None] = mapped_column(Timestamp)
    consecutive_invalid_outputs: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Since when every delivery attempt has failed (5 days of it disables the subscription).
    delivery_failing_since: Mapped[datetime | None] = mapped_column(Timestamp)

    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class SubscriptionSecret(Base):
    __tablename__ = "subscription_secrets"

    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class PollRun(Base):
    __tablename__ = "poll_runs"
    __table_args__ = (
        Index("ix_poll_runs_subscription_id_started_at_id", "subscription_id", "started_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(Timestamp, index=True)  # the 7-day sweep
    finished_at: Mapped[datetime] = mapped_column(Timestamp)
    outcome: Mapped[str] = mapped_column(String(20))
    returned: Mapped[int] = mapped_column(Integer)
    new: Mapped[int] = mapped_column(Integer)
    capped: Mapped[bool] = mapped_column(Boolean)
    duration_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class TriggerEvent(Base):
    """An event a subscription's code returned: its dedupe key and, while it must be sent, its
    place in the outbox. The unique key decides what is new; nothing SELECTs first."""

    __tablename__ = "trigger_events"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_key"),
        # The dispatcher's claim: pending events that are due.
        Index(
            "ix_trigger_events_due", "next_attempt_at",
            postgresql_where=text("state = 'pending'"), sqlite_where=text("state = 'pending'"),
        ),
        Index("ix_trigger_events_subscription_id_first_seen_at_id", "subscription_id", "first_seen_at", "id"),
        # The per-subscription key cap: the newest keys of one subscription, and the oldest beyond them.
        Index("ix_trigger_events_subscription_id_last_seen_at_id", "subscription_id", "last_seen_at", "id"),
        # The retention sweep's clearing of delivered bodies after 7 days: only the rows that still hold
        # one, so the index stays about a week of deliveries long and a sweep never reads a cleared row.
        Index(
            "ix_trigger_events_delivered_body", "delivered_at",
            postgresql_where=text("state = 'delivered' AND body IS NOT NULL"),
            sqlite_where=text("state = 'delivered' AND body IS NOT NULL"),
        ),
    )

    # `msg_…`: the webhook-id of every attempt.
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    # JavaScript's String(event.id).
    event_key: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    # The exact bytes that are signed and sent, built once; cleared by the retention sweep.
    body: Mapped[str | None] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(Timestamp)
    # Dedupe keys are kept 30 days after they were last seen: the sweep's index.
    last_seen_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    attempts: Mapped[int] = mapped_column(Integer)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp)
    lease_epoch: Mapped[int] = mapped_column(Integer)
    lease_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_event_id_attempted_at", "event_id", "attempted_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("trigger_events.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime] = mapped_column(Timestamp, index=True)  # the 30-day sweep
    status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(String(500))

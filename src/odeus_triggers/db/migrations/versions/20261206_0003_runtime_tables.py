"""runtime tables: secrets, subscriptions, poll runs, trigger events (dedupe set and outbox), delivery attempts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "encryption_canary",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_encryption_canary")),
    )
    op.create_table(
        "integration_secrets",
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_integration_secrets_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("integration_id", "name", name=op.f("pk_integration_secrets")),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("trigger_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("paused_reason", sa.String(length=32), nullable=True),
        sa.Column("inputs", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("sealed_inputs", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("webhook_url", sa.String(length=2048), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("backfill_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signing_secret", sa.Text(), nullable=False),
        sa.Column("previous_signing_secret", sa.Text(), nullable=True),
        sa.Column("previous_signing_secret_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_poll_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seeded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_epoch", sa.Integer(), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_succeeded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_invalid_outputs", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True),
        sa.Column("delivery_failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trigger_id"], ["triggers.id"], name=op.f("fk_subscriptions_trigger_id_triggers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_subscriptions_due",
            ["next_poll_at"],
            unique=False,
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )
        batch_op.create_index("ix_subscriptions_trigger_id_created_at_id", ["trigger_id", "created_at", "id"], unique=False)

    op.create_table(
        "poll_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("returned", sa.Integer(), nullable=False),
        sa.Column("new", sa.Integer(), nullable=False),
        sa.Column("capped", sa.Boolean(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["subscriptions.id"], name=op.f("fk_poll_runs_subscription_id_subscriptions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_poll_runs")),
    )
    with op.batch_alter_table("poll_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_poll_runs_started_at"), ["started_at"], unique=False)
        batch_op.create_index("ix_poll_runs_subscription_id_started_at_id", ["subscription_id", "started_at", "id"], unique=False)

    op.create_table(
        "subscription_secrets",
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_secrets_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscription_id", "name", name=op.f("pk_subscription_secrets")),
    )
    op.create_table(
        "trigger_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("event_key", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_epoch", sa.Integer(), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_trigger_events_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_events")),
        sa.UniqueConstraint("subscription_id", "event_key", name=op.f("uq_trigger_events_subscription_id_event_key")),
    )
    with op.batch_alter_table("trigger_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_trigger_events_due",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        )
        batch_op.create_index(batch_op.f("ix_trigger_events_last_seen_at"), ["last_seen_at"], unique=False)
        batch_op.create_index(
            "ix_trigger_events_subscription_id_first_seen_at_id", ["subscription_id", "first_seen_at", "id"], unique=False
        )

    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["trigger_events.id"], name=op.f("fk_delivery_attempts_event_id_trigger_events"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_attempts_attempted_at"), ["attempted_at"], unique=False)
        batch_op.create_index("ix_delivery_attempts_event_id_attempted_at", ["event_id", "attempted_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_attempts_event_id_attempted_at")
        batch_op.drop_index(batch_op.f("ix_delivery_attempts_attempted_at"))

    op.drop_table("delivery_attempts")
    with op.batch_alter_table("trigger_events", schema=None) as batch_op:
        batch_op.drop_index("ix_trigger_events_subscription_id_first_seen_at_id")
        batch_op.drop_index(batch_op.f("ix_trigger_events_last_seen_at"))
        batch_op.drop_index(
            "ix_trigger_events_due", postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'")
        )

    op.drop_table("trigger_events")
    op.drop_table("subscription_secrets")
    with op.batch_alter_table("poll_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_poll_runs_subscription_id_started_at_id")
        batch_op.drop_index(batch_op.f("ix_poll_runs_started_at"))

    op.drop_table("poll_runs")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriptions_trigger_id_created_at_id")
        batch_op.drop_index(
            "ix_subscriptions_due", postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'")
        )

    op.drop_table("subscriptions")
    op.drop_table("integration_secrets")
    op.drop_table("encryption_canary")

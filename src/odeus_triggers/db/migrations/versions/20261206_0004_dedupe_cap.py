"""dedupe cap: an index on trigger_events (subscription_id, last_seen_at, id)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trigger_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_trigger_events_subscription_id_last_seen_at_id", ["subscription_id", "last_seen_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("trigger_events", schema=None) as batch_op:
        batch_op.drop_index("ix_trigger_events_subscription_id_last_seen_at_id")

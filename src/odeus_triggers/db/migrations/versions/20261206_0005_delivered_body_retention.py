"""delivered body retention: a partial index on trigger_events (delivered_at) for delivered events
that still hold their body

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHERE = "state = 'delivered' AND body IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("trigger_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_trigger_events_delivered_body",
            ["delivered_at"],
            unique=False,
            postgresql_where=sa.text(_WHERE),
            sqlite_where=sa.text(_WHERE),
        )


def downgrade() -> None:
    with op.batch_alter_table("trigger_events", schema=None) as batch_op:
        batch_op.drop_index("ix_trigger_events_delivered_body", postgresql_where=sa.text(_WHERE), sqlite_where=sa.text(_WHERE))

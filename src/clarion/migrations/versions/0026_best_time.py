"""best-time campaigns (each recipient's most engaged hour) and paused scheduled campaigns (#16)

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("best_time", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("best_hour", sa.SmallInteger(), nullable=True))
    op.create_index("ix_event_subscriber", "events", ["subscriber_id", "type", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_event_subscriber", table_name="events")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("best_hour")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("best_time")

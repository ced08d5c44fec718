"""pacing (#16): campaign rate, app frequency cap, the `capped` ledger status's folded counter, the
shared limiter's table, and the index frequency capping reads a subscriber's recent sends through

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_per_minute", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("folded_capped", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("frequency_cap", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("frequency_cap_period_s", sa.Integer(), nullable=True))
    op.create_index("ix_delivery_subscriber", "deliveries", ["subscriber_id"])
    op.create_table(
        "pacing_buckets",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("next_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pacing_buckets")
    op.drop_index("ix_delivery_subscriber", table_name="deliveries")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("frequency_cap_period_s")
        batch_op.drop_column("frequency_cap")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("folded_capped")
        batch_op.drop_column("rate_per_minute")

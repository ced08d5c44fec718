"""fan-out slices: a campaign's audience cut into subscriber-id ranges that any worker may claim

Revision ID: 0011
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity (models.BigId).
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "fanout_slices",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", BIG_ID, nullable=False),
        sa.Column("first_id", sa.BigInteger(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fanout_slices", schema=None) as batch_op:
        batch_op.create_index("ix_fanout_slice_sweep", ["done", "lease_until"], unique=False)
        batch_op.create_index("ix_fanout_slice_campaign", ["campaign_id", "done"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fanout_slices", schema=None) as batch_op:
        batch_op.drop_index("ix_fanout_slice_campaign")
        batch_op.drop_index("ix_fanout_slice_sweep")
    op.drop_table("fanout_slices")

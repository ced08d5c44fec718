"""campaign follow-ups (an update or a retraction of a sent campaign, sent to whom it reached) and A/B
variants (a campaign's variants, holdout and winner; each recipient's group in the ledger)

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("follows_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite")))
        batch_op.add_column(sa.Column("follow_up", sa.String(16), nullable=True))
        batch_op.add_column(sa.Column("variants", sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column("holdout_percent", sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column("winner_after_s", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("winner_variant", sa.SmallInteger(), nullable=True))
        batch_op.create_index("ix_campaign_follows", ["follows_id"])
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("variant", sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("variant")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index("ix_campaign_follows")
        for column in ("winner_variant", "winner_after_s", "holdout_percent", "variants"):
            batch_op.drop_column(column)
        batch_op.drop_column("follow_up")
        batch_op.drop_column("follows_id")

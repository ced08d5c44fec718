"""ledger retention: campaigns count the ledger rows folded away; a batch keeps its report's sent users

Revision ID: 0012
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

FOLDED = ("folded_sent", "folded_gone", "folded_rejected", "folded_expired", "folded_failed")


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        for name in FOLDED:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("ledger_folded_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_users", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("sent_users")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("ledger_folded_at")
        for name in reversed(FOLDED):
            batch_op.drop_column(name)

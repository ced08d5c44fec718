"""audience indexes: (app_id, reg_id), so that a push to a few tokens is searched from its targets

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.create_index("ix_subscriber_app_reg", ["app_id", "reg_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriber_app_reg")

"""subscriber attributes (key/value data for audiences and templates) and a campaign's per-language
content (#17)

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriber_attributes",
        sa.Column(
            "subscriber_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    op.create_index("ix_subscriber_attributes_key_value", "subscriber_attributes", ["key", "value"])
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("personalization", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("personalization")
    op.drop_index("ix_subscriber_attributes_key_value", table_name="subscriber_attributes")
    op.drop_table("subscriber_attributes")

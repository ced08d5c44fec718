"""token hygiene: credentials flagged as failing, subscribers' failure streaks and why the hygiene job
deactivated them, VAPID key rotation (`vapid_keys`, subscribers.vapid_key_id) (issue #18)

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("app_credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("failing_reason", sa.String(255), nullable=True))
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vapid_failing_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("vapid_failing_reason", sa.String(255), nullable=True))
        batch_op.add_column(sa.Column("vapid_failing_origin", sa.String(255), nullable=True))
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failure_streak", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("deactivated_reason", sa.String(32), nullable=True))
        batch_op.add_column(sa.Column("vapid_key_id", sa.BigInteger(), nullable=True))
    op.create_table(
        "vapid_keys",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column(
            "app_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("apps.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("public_key", sa.String(128), nullable=False),
        sa.Column("private_pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_vapid_key_app", "vapid_keys", ["app_id"])


def downgrade() -> None:
    op.drop_index("ix_vapid_key_app", table_name="vapid_keys")
    op.drop_table("vapid_keys")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("vapid_key_id")
        batch_op.drop_column("deactivated_reason")
        batch_op.drop_column("failure_streak")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("vapid_failing_origin")
        batch_op.drop_column("vapid_failing_reason")
        batch_op.drop_column("vapid_failing_since")
    with op.batch_alter_table("app_credentials", schema=None) as batch_op:
        batch_op.drop_column("failing_reason")
        batch_op.drop_column("failing_since")

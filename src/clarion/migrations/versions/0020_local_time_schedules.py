"""local-time campaigns, quiet hours, recurring schedules (#16)

Revision ID: 0020
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("app_id", sa.BigInteger(), sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rrule", sa.Text(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("template", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_schedule_due", "schedules", ["status", "next_at"])
    op.create_index("ix_schedule_app", "schedules", ["app_id", "id"])
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("local_time", sa.String(5), nullable=True))
        batch_op.add_column(sa.Column("past_zones", sa.String(8), nullable=True))
        batch_op.add_column(sa.Column("release_plan", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("schedule_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("occurrence_at", sa.DateTime(timezone=True), nullable=True))
    # One campaign per occurrence of a schedule, however many schedulers race for it.
    op.create_index("ux_campaign_occurrence", "campaigns", ["schedule_id", "occurrence_at"], unique=True)
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quiet_start", sa.String(5), nullable=True))
        batch_op.add_column(sa.Column("quiet_end", sa.String(5), nullable=True))
        batch_op.add_column(sa.Column("quiet_mode", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("quiet_mode")
        batch_op.drop_column("quiet_end")
        batch_op.drop_column("quiet_start")
    op.drop_index("ux_campaign_occurrence", table_name="campaigns")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("occurrence_at")
        batch_op.drop_column("schedule_id")
        batch_op.drop_column("release_plan")
        batch_op.drop_column("past_zones")
        batch_op.drop_column("local_time")
    op.drop_index("ix_schedule_app", table_name="schedules")
    op.drop_index("ix_schedule_due", table_name="schedules")
    op.drop_table("schedules")

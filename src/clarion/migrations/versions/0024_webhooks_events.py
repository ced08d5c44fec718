"""app events (the outbox and the event feed), event feeds switched on, webhook endpoints (#18)

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "app_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("app_id", _ID, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("occurred_at", _AT, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_app_events_app", "app_events", ["app_id", "id"])
    op.create_index("ix_app_events_occurred", "app_events", ["occurred_at"])
    op.create_table(
        "event_feeds",
        sa.Column("app_id", _ID, sa.ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", _AT, nullable=False),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("app_id", _ID, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.String(255), nullable=True),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_until", _AT, nullable=True),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("replay_from", sa.BigInteger(), nullable=True),
        sa.Column("replay_to", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _AT, nullable=False),
        sa.Column("failing_since", _AT, nullable=True),
        sa.Column("last_error", sa.String(255), nullable=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("lease_until", _AT, nullable=True),
    )
    op.create_index("ix_webhook_endpoints_app", "webhook_endpoints", ["app_id"])
    op.create_index("ix_webhook_endpoints_due", "webhook_endpoints", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_table("webhook_endpoints")
    op.drop_table("event_feeds")
    op.drop_table("app_events")

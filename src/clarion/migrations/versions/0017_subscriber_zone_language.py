"""subscriber time zone and language, app default time zone: what local-time sending (#16) and
per-language content (#17) read

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timezone", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("language", sa.String(16), nullable=True))
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("default_timezone", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("default_timezone")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("language")
        batch_op.drop_column("timezone")

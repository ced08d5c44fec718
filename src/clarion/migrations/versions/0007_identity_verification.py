"""identity verification

Revision ID: 0007
Revises: 0006

Apps keep their Swrve identity key itself (verifying a device's user-id HMAC needs it) and a per-app
switch. Apps that exist already stored only the key's hash, so they get no key and the switch off:
their devices may register user ids from the app's own backend, which must first learn to send the
hash (docs/security.md, "Identity verification").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_secret_key", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("identity_verification", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("identity_verification")
        batch_op.drop_column("identity_secret_key")

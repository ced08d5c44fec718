"""The admin token: CLARION_ADMIN_TOKEN, or one generated and printed on first start."""

from __future__ import annotations

import secrets
import sys
from typing import Any

from clarion.app_tenant.security import hash_secret
from clarion.config import Settings
from clarion.db import Database
from clarion.models import Meta

KEY = "admin_token_sha256"


async def ensure_admin_token(db: Database, settings: Settings) -> dict[str, Any]:
    """Store the token's hash; print a generated token once, since it cannot be shown again."""
    async with db.session() as session:
        stored = await session.get(Meta, KEY)
        if settings.admin_token:
            value = hash_secret(settings.admin_token)
            if stored is None:
                session.add(Meta(key=KEY, value=value))
            else:
                stored.value = value
            return {}
        if stored is None:
            token = secrets.token_urlsafe(24)
            session.add(Meta(key=KEY, value=hash_secret(token)))
            print(f"clarion: generated admin token (shown once): {token}", file=sys.stderr)
    return {}

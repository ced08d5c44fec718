"""The admin token: CLARION_ADMIN_TOKEN, or one generated and printed on first start."""

from __future__ import annotations

import secrets
import sys
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.admin.repository import MetaRepository
from clarion.app_tenant.security import hash_secret, verify_secret
from clarion.config import Settings
from clarion.db import Database

KEY = "admin_token_sha256"


async def ensure_admin_token(db: Database, settings: Settings) -> dict[str, Any]:
    """Store the token's hash; print a generated token once, since it cannot be shown again."""
    async with db.session() as session:
        repo = MetaRepository(session)
        if settings.admin_token:
            await repo.put(KEY, hash_secret(settings.admin_token))
            return {}
        if await repo.get(KEY) is None:
            token = secrets.token_urlsafe(24)
            await repo.put(KEY, hash_secret(token))
            print(f"clarion: generated admin token (shown once): {token}", file=sys.stderr)
    return {}


async def check_admin_token(session: AsyncSession, settings: Settings, presented: str) -> None:
    """Bearer token of the admin API, compared in constant time with the stored hash."""
    stored = await MetaRepository(session).get(KEY)
    expected = hash_secret(settings.admin_token) if settings.admin_token else stored
    if not verify_secret(presented, expected):
        raise errors.Unauthorized()

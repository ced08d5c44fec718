"""The admin API and its token: CLARION_ADMIN_TOKEN, or one generated and printed on first start."""

from __future__ import annotations

import secrets
import sys
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from clarion import errors
from clarion.app_tenant.security import hash_secret, verify_secret
from clarion.config import Settings
from clarion.db import Database
from clarion.models import Meta
from clarion.runtime import Runtime, runtime
from clarion.swrve import report as swrve

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


async def check_admin_token(db: Database, settings: Settings, presented: str) -> None:
    """Bearer token of the admin API, compared in constant time with the stored hash."""
    async with db.session() as session:
        stored = await session.get(Meta, KEY)
    expected = (
        hash_secret(settings.admin_token) if settings.admin_token else (stored.value if stored else None)
    )
    if not verify_secret(presented, expected):
        raise errors.Unauthorized()


async def require_admin(request: Request, rt: Annotated[Runtime, Depends(runtime)]) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise errors.Unauthorized()
    await check_admin_token(rt.db, rt.settings, token.strip())


router = APIRouter(prefix="/admin/v1", tags=["Admin"], dependencies=[Depends(require_admin)])


@router.get("/push-campaigns/{campaign_id}")
async def push_campaign_counters(
    campaign_id: int, rt: Annotated[Runtime, Depends(runtime)]
) -> dict[str, Any]:
    async with rt.db.session() as session:
        return await swrve.counters(session, campaign_id)

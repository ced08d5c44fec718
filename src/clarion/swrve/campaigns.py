"""Push API campaigns of the Swrve-compatible surface: each has a push_key that batches are sent with."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.app_tenant import service as apps
from clarion.app_tenant.security import hash_secret
from clarion.db import utcnow
from clarion.models import PushCampaign
from clarion.swrve.repository import SwrveRepository

PLATFORMS = ("all", "ios", "android", "adm", "wns", "web")


async def create_push_campaign(
    session: AsyncSession, app_key: str, name: str, message: str | None, title: str | None, platform: str
) -> tuple[int, str]:
    app = await apps.by_key(session, app_key)
    if platform not in PLATFORMS:
        raise errors.InvalidField(f"platform must be one of {', '.join(PLATFORMS)}", field="platform")
    if not 1 <= len(name) <= 255:
        raise errors.InvalidField("name must be 1-255 characters", field="name")
    push_key = secrets.token_hex(16)
    campaign = PushCampaign(
        app_id=app.id,
        name=name,
        push_key_hash=hash_secret(push_key),
        message=message,
        title=title,
        platform=platform,
        created_at=utcnow(),
    )
    await SwrveRepository(session).add(campaign)
    return campaign.id, push_key

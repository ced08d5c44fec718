"""Push API campaigns of the Swrve-compatible surface: each has a push_key that batches are sent with."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.app_tenant import service as apps
from clarion.app_tenant.security import hash_secret
from clarion.db import utcnow
from clarion.models import App, PushCampaign
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
    push_key = _new_push_key()
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


def _new_push_key() -> str:
    return secrets.token_hex(16)


async def push_campaigns(session: AsyncSession, app: App) -> list[PushCampaign]:
    """The app's Push API campaigns, newest first."""
    return await SwrveRepository(session).push_campaigns(app.id)


async def rotate_push_key(session: AsyncSession, app: App, push_campaign_id: int) -> str:
    """A new push key for one of the app's Push API campaigns, returned once; the old key stops working."""
    repo = SwrveRepository(session)
    push = await repo.push_campaign(push_campaign_id)
    if push is None or push.app_id != app.id:
        raise errors.NotFound(f"There is no Push API campaign {push_campaign_id}", field="campaign_id")
    push_key = _new_push_key()
    await repo.set_push_key_hash(push, hash_secret(push_key))
    return push_key

"""Push API campaigns of the Swrve-compatible surface: each has a push_key that batches are sent with."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.app_tenant import service as apps
from clarion.app_tenant.security import hash_secret
from clarion.db import utcnow
from clarion.models import App, Batch, PushCampaign
from clarion.swrve.repository import SwrveRepository
from clarion.validation import storable

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


async def get_push_campaign(session: AsyncSession, app: App, push_campaign_id: int) -> PushCampaign:
    """One of the app's Push API campaigns; another app's answers as an unknown one."""
    campaign = await SwrveRepository(session).push_campaign(push_campaign_id)
    if campaign is None or campaign.app_id != app.id:
        raise errors.NotFound(f"There is no Push API campaign {push_campaign_id}", field="campaign_id")
    return campaign


async def push_campaigns(session: AsyncSession, app: App, after_id: int, limit: int) -> list[PushCampaign]:
    return await SwrveRepository(session).push_campaigns_page(app.id, after_id, limit)


async def rotate_push_key(session: AsyncSession, app: App, push_campaign_id: int) -> str:
    """A new push_key, shown once; batches sent with the old one are refused from the commit on."""
    campaign = await get_push_campaign(session, app, push_campaign_id)
    push_key = _new_push_key()
    await SwrveRepository(session).set_push_key_hash(campaign.id, hash_secret(push_key))
    return push_key


async def delete_push_campaign(session: AsyncSession, app: App, push_campaign_id: int) -> None:
    campaign = await get_push_campaign(session, app, push_campaign_id)
    await SwrveRepository(session).delete_push_campaign(campaign.id)


async def batches(
    session: AsyncSession, app: App, push_campaign_id: int, offset: int, limit: int
) -> list[Batch]:
    campaign = await get_push_campaign(session, app, push_campaign_id)
    return await SwrveRepository(session).batches_page(campaign.id, offset, limit)


async def batch_of(session: AsyncSession, app: App, push_campaign_id: int, batch_id: str) -> Batch:
    """One batch of one of the app's Push API campaigns."""
    campaign = await get_push_campaign(session, app, push_campaign_id)
    batch = await SwrveRepository(session).batch(batch_id) if storable(batch_id) else None
    if batch is None or batch.push_campaign_id != campaign.id:
        raise errors.NotFound(f"There is no batch {batch_id} of this campaign", field="batch_id")
    return batch

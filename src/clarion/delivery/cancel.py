"""Cancelling a campaign: a scheduled one never starts; a sending one stops within a second or two
across all workers (its slices are no longer claimed, its pending ledger rows are ended, so the jobs
already queued find nothing to send); what was sent stays counted."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.campaign.repository import CampaignRepository
from clarion.db import utcnow
from clarion.delivery.repository import LedgerRepository
from clarion.event import service as events
from clarion.event.types import EventType
from clarion.models import App, Campaign


async def cancel(session: AsyncSession, app: App, campaign_id: int) -> Campaign:
    campaigns = CampaignRepository(session)
    campaign = await campaigns.get(app.id, campaign_id)
    if campaign is None:
        raise errors.NotFound(f"There is no campaign {campaign_id} in this app", field="campaign_id")
    if campaign.push_campaign_id is not None:
        raise errors.InvalidField(
            "campaign_id: a Push API batch's campaign is transactional and cannot be cancelled",
            field="campaign_id",
        )
    now = utcnow()
    if not await campaigns.cancel(app.id, campaign_id, now):
        raise errors.CampaignFinished()
    await LedgerRepository(session).cancel_pending(campaign_id, now)
    await events.record(session, app.id, EventType.CAMPAIGN_CANCELLED, {"campaign_id": str(campaign_id)})
    return campaign

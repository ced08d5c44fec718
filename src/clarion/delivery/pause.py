"""Pausing and resuming a campaign: before it starts (docs/scheduling.md) or while sending (docs/pacing.md).

Paused: no worker claims its rows (the claim checks), the sweep leaves them alone, no slice of it is
claimed or adds rows (those need `sending`), and a job in hand stops before its next send (workers
look at the status at most a second old between sends), handing its unsent rows back as pending. So
sends stop within a second or two across every worker; what was sent stays counted. Resumed: its
waiting rows and slices are due at once, and take new send times under its rate. A paused campaign
can be cancelled.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.campaign import service as campaigns
from clarion.campaign.repository import CampaignRepository
from clarion.db import utcnow
from clarion.delivery.repository import LedgerRepository, SliceRepository
from clarion.models import App, Campaign, CampaignStatus


async def _campaign(session: AsyncSession, app: App, campaign_id: int) -> Campaign:
    campaign = await CampaignRepository(session).get(app.id, campaign_id)
    if campaign is None:
        raise errors.NotFound(f"There is no campaign {campaign_id} in this app", field="campaign_id")
    if campaign.push_campaign_id is not None:
        raise errors.InvalidField(
            "campaign_id: a Push API batch's campaign is transactional and cannot be paused",
            field="campaign_id",
        )
    return campaign


async def pause(session: AsyncSession, app: App, campaign_id: int) -> Campaign:
    """A scheduled campaign is held before it starts (campaign.service.pause_scheduled); a sending one
    stops sending."""
    campaign = await _campaign(session, app, campaign_id)
    if campaign.status == CampaignStatus.SCHEDULED:
        return await campaigns.pause_scheduled(session, app, campaign_id)
    moved = await CampaignRepository(session).change_status(
        app.id, campaign_id, CampaignStatus.SENDING, CampaignStatus.PAUSED
    )
    if not moved:
        raise errors.CampaignNotSending()
    return campaign


async def resume(session: AsyncSession, app: App, campaign_id: int) -> Campaign:
    """One paused before it started is scheduled again; one paused while sending goes on."""
    campaign = await _campaign(session, app, campaign_id)
    if campaign.status == CampaignStatus.PAUSED and campaign.started_at is None:
        return await campaigns.resume_scheduled(session, app, campaign_id)
    moved = await CampaignRepository(session).change_status(
        app.id, campaign_id, CampaignStatus.PAUSED, CampaignStatus.SENDING
    )
    if not moved:
        raise errors.CampaignNotPaused()
    now = utcnow()
    await LedgerRepository(session).resume(campaign_id, now)
    await SliceRepository(session).resume(campaign_id, now)
    return campaign

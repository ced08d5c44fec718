"""Updating or retracting a campaign after it was sent: a follow-up campaign to whom it reached.

A follow-up is a campaign of its own (so the engine schedules, fans out, retries and counts it like any
other) whose audience is the parent's ledger rows that were sent (`audience.service`, kind
`follow_up`). On load (delivery/context.py) it takes the parent's id and tag: the browser's service
worker replaces (or closes) the notification shown under that tag, a push service replaces a message
still waiting under the same Topic, APNs (`apns-collapse-id`) and FCM (`collapse_key`, android `tag`)
replace the notification carrying the same key. docs/follow-ups.md says what each platform does.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import content, errors
from clarion.campaign import payload
from clarion.campaign.repository import CampaignRepository
from clarion.campaign.schemas import Content
from clarion.campaign.service import get
from clarion.content import display_tag
from clarion.db import utcnow
from clarion.models import App, Campaign, CampaignStatus, FollowUp


async def update(session: AsyncSession, app: App, campaign_id: int, new: Content) -> Campaign:
    """Replace the sent notification's content wherever the platform allows it."""
    parent = await _parent(session, app, campaign_id)
    if not payload.fits(new, parent.display_time_s, display_tag(parent.id, parent.push_tag)):
        raise errors.InvalidField(
            f"payload: the notification must fit {payload.MAX_PAYLOAD_BYTES} bytes once encoded",
            field="payload",
        )
    shown = payload.notification("", new, parent.display_time_s, parent.push_tag)
    return await _add(session, parent, FollowUp.UPDATE, content.encode(shown))


async def retract(session: AsyncSession, app: App, campaign_id: int) -> Campaign:
    """Close the sent notification wherever the platform allows it."""
    parent = await _parent(session, app, campaign_id)
    return await _add(session, parent, FollowUp.RETRACT, dict(parent.payload))


async def of(session: AsyncSession, parent: Campaign) -> list[Campaign]:
    """The campaign's follow-ups, oldest first: the record of each update and retraction."""
    return await CampaignRepository(session).follow_ups(parent.id)


async def _parent(session: AsyncSession, app: App, campaign_id: int) -> Campaign:
    parent = await get(session, app, campaign_id)
    if parent.follows_id is not None:
        raise errors.InvalidField(
            "campaign_id: this is an update or retraction; update or retract the campaign it follows",
            field="campaign_id",
        )
    if parent.push_campaign_id is not None:
        raise errors.InvalidField(
            "campaign_id: a Push API batch's campaign cannot be updated or retracted", field="campaign_id"
        )
    if parent.status not in (CampaignStatus.SENDING, CampaignStatus.SENT):
        raise errors.CampaignNotSent()
    return parent


async def _add(
    session: AsyncSession, parent: Campaign, kind: FollowUp, stored: dict[str, object]
) -> Campaign:
    now = utcnow()
    audience: dict[str, object] = {"kind": "follow_up", "campaign_id": parent.id}
    if "platforms" in parent.audience:
        audience["platforms"] = parent.audience["platforms"]
    follow_up = Campaign(
        app_id=parent.app_id,
        status=CampaignStatus.SCHEDULED,
        send_at=now,
        ttl_s=parent.ttl_s,
        display_time_s=parent.display_time_s,
        push_tag=parent.push_tag,
        is_transactional=parent.is_transactional,
        urgency=parent.urgency,
        payload=stored,
        audience=audience,
        created_at=now,
        fanout_done=False,
        counts_toward_quota=False,
        follows_id=parent.id,
        follow_up=kind,
    )
    return await CampaignRepository(session).add(follow_up, [])

"""Rules about campaigns: creation (audience resolution and quota), scheduling and statistics."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import content, errors
from clarion.app_tenant import service as apps
from clarion.app_tenant.repository import AppRepository
from clarion.audience.repository import AudienceRepository
from clarion.campaign import payload
from clarion.campaign.repository import CampaignRepository
from clarion.campaign.schemas import AudienceSpec, CampaignCreate, CampaignStats, SegmentTerm
from clarion.db import as_utc, utcnow
from clarion.models import App, Campaign, CampaignStatus, Segment
from clarion.validation import storable

# Tag names (and their case-folded forms) are at most 255 symbols (Gravitec v3).
MAX_TAG_NAME = 255


async def _resolve_terms(
    session: AsyncSession, app: App, terms: tuple[SegmentTerm, ...], field: str
) -> list[dict[str, Any]]:
    """tags_segment names must exist in the app; they are stored as tag ids."""
    tags = await CampaignRepository(session).tags_by_names(app.id, [t.name for t in terms])
    by_folded = {tag.name_folded: tag.id for tag in tags}
    resolved: list[dict[str, Any]] = []
    for index, term in enumerate(terms):
        tag_id = by_folded.get(term.name.casefold())
        if tag_id is None:
            raise errors.InvalidField(
                f"{field}[{index}].name: there is no tag {term.name!r} in this app",
                field=f"{field}[{index}].name",
            )
        resolved.append({"association": term.association, "tag_id": tag_id})
    return resolved


async def _audience(session: AsyncSession, app: App, spec: AudienceSpec) -> tuple[dict[str, Any], list[str]]:
    """The stored audience description and the target values that go with it."""
    if spec.segment is not None:
        segment = await CampaignRepository(session).segment(app.id, spec.segment)
        if segment is None:
            raise errors.InvalidField(
                f"segments[0]: there is no segment {spec.segment!r} in this app", field="segments[0]"
            )
        terms = tuple(SegmentTerm(t["association"], t["name"]) for t in segment.tags_segment)  # type: ignore[arg-type]
        resolved = await _resolve_terms(session, app, terms, "segments[0]")
        return {"kind": "tags_segment", "segment_id": segment.id, "terms": resolved}, []
    if spec.kind == "tags_segment":
        resolved = await _resolve_terms(session, app, spec.terms, "audience.tags_segment")
        return {"kind": "tags_segment", "terms": resolved}, []
    if spec.kind == "tags":
        # A name whose folded form is longer than a tag can be names no tag: it selects nobody.
        folded = (value.casefold() for value in spec.values)
        return {"kind": "tags"}, [name for name in folded if len(name) <= MAX_TAG_NAME]
    return {"kind": spec.kind}, list(spec.values)


async def _check_quota(session: AsyncSession, app: App) -> None:
    """The free plan's API campaigns per UTC day. Call right before storing the campaign, in the same
    transaction: the app stays locked until the commit, so concurrent requests cannot all see the
    last slot free."""
    if app.plan != "free":
        return
    await AppRepository(session).lock(app.id)
    now = utcnow()
    midnight = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    used = await CampaignRepository(session).quota_campaigns_since(app.id, midnight)
    if used >= apps.FREE_CAMPAIGNS_PER_DAY:
        raise errors.QuotaExceeded()


async def create(
    session: AsyncSession, app: App, spec: CampaignCreate, *, api_quota: bool = True
) -> Campaign:
    """Store a campaign as scheduled. `api_quota`: it counts toward the free plan's API campaigns
    (the Gravitec API); a subscriber's own test notification does not."""
    if not payload.fits(spec.content, spec.display_time_s, spec.push_tag):
        raise errors.InvalidField(
            f"payload: the notification must fit {payload.MAX_PAYLOAD_BYTES} bytes once encoded",
            field="payload",
        )
    audience, targets = await _audience(session, app, spec.audience)
    if api_quota:
        await _check_quota(session, app)
    now = utcnow()
    campaign = Campaign(
        app_id=app.id,
        status=CampaignStatus.SCHEDULED,
        send_at=spec.send_at or now,
        ttl_s=spec.ttl_s,
        display_time_s=spec.display_time_s,
        push_tag=spec.push_tag,
        is_transactional=spec.is_transactional,
        urgency=spec.urgency,
        payload=content.encode(_notification(spec)),
        audience=audience,
        created_at=now,
        fanout_done=False,
        counts_toward_quota=api_quota,
    )
    return await CampaignRepository(session).add(campaign, targets)


def _notification(spec: CampaignCreate) -> content.Notification:
    """What every recipient gets; on load the campaign's id and columns (TTL, urgency) are set again."""
    shown = payload.notification("", spec.content, spec.display_time_s, spec.push_tag)
    return replace(shown, ttl_s=spec.ttl_s, high_priority=spec.urgency in ("normal", "high"))


async def recent(session: AsyncSession, app: App, limit: int) -> list[dict[str, Any]]:
    """The app's newest campaigns, as an operator lists them."""
    return [
        {
            "campaign_id": campaign.id,
            "status": campaign.status,
            "send_at": as_utc(campaign.send_at).isoformat(),
            "created_at": as_utc(campaign.created_at).isoformat(),
            "title": campaign.payload.get("title") or "",
        }
        for campaign in await CampaignRepository(session).recent(app.id, limit)
    ]


async def count_recipients(
    session: AsyncSession, app: App, spec: AudienceSpec, platforms: tuple[str, ...]
) -> int:
    """How many subscribers a campaign to this audience would go to now (a dry run: nothing is
    stored). The audience is checked as `create` checks it, with the same errors."""
    audience, targets = await _audience(session, app, spec)
    return await AudienceRepository(session).count(app.id, audience, platforms, targets)


async def history(
    session: AsyncSession, app: App, limit: int, *, transactional: bool
) -> list[tuple[Campaign, CampaignStats]]:
    """The app's newest campaigns with their statistics, the transactional ones only if asked."""
    found = await CampaignRepository(session).recent(app.id, limit, transactional=transactional)
    return [(campaign, await stats(session, app, campaign.id)) for campaign in found]


async def get(session: AsyncSession, app: App, campaign_id: int) -> Campaign:
    campaign = await CampaignRepository(session).get(app.id, campaign_id)
    if campaign is None:
        raise errors.UnknownMessage()
    return campaign


async def cancel(session: AsyncSession, app: App, campaign_id: int) -> Campaign:
    """Cancel a scheduled campaign (nothing of it is sent) or a sending one (its fan-out stops adding
    recipients; messages already queued still go out)."""
    campaign = await get(session, app, campaign_id)
    if not await CampaignRepository(session).cancel(campaign.id, utcnow()):
        raise errors.InvalidField(
            f"Only a scheduled or sending campaign can be cancelled; this one is {campaign.status}",
            field="campaign_id",
        )
    return campaign


async def outcomes(session: AsyncSession, app: App, campaign_id: int) -> dict[str, int]:
    """The campaign's recipients by delivery outcome (pending, sent, gone, rejected, expired, failed)."""
    campaign = await get(session, app, campaign_id)
    return await CampaignRepository(session).outcome_counts(campaign.id)


async def stats(session: AsyncSession, app: App, campaign_id: int) -> CampaignStats:
    repo = CampaignRepository(session)
    campaign = await get(session, app, campaign_id)
    events = await repo.event_counts(campaign.id)
    return CampaignStats(
        campaign_id=campaign.id,
        status=CampaignStatus(campaign.status),
        send_at=as_utc(campaign.send_at),
        sent=await repo.sent_count(campaign.id),
        received=events.get("received", 0),
        clicked=events.get("clicked", 0),
        closed=events.get("closed", 0),
    )


async def create_segment(
    session: AsyncSession, app: App, name: str, terms: tuple[SegmentTerm, ...]
) -> Segment:
    if not 1 <= len(name) <= 255:
        raise errors.InvalidField("name must be 1-255 characters", field="name")
    if not storable(name):
        raise errors.InvalidField("name must be 1-255 characters without NUL characters", field="name")
    if await CampaignRepository(session).segment(app.id, name) is not None:
        raise errors.InvalidField(f"A segment named {name!r} exists already", field="name")
    await _resolve_terms(session, app, terms, "tags_segment")
    segment = Segment(
        app_id=app.id,
        name=name,
        tags_segment=[{"association": t.association, "name": t.name} for t in terms],
    )
    return await CampaignRepository(session).add_segment(segment)


async def segments(session: AsyncSession, app: App) -> list[Segment]:
    """The app's saved segments, by name."""
    return await CampaignRepository(session).segments(app.id)


async def delete_segment(session: AsyncSession, app: App, segment_id: int) -> None:
    """Delete a saved segment; campaigns already sent to it keep their resolved audience."""
    repo = CampaignRepository(session)
    segment = await repo.segment(app.id, str(segment_id))
    if segment is None or segment.id != segment_id:
        raise errors.NotFound(f"There is no segment {segment_id} in this app", field="segment_id")
    await repo.delete_segment(segment)

"""What each console page shows, gathered from the features' own services (no rule of their own)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion.app_tenant import service as apps
from clarion.campaign import service as campaigns
from clarion.campaign.schemas import AudienceSpec, Funnel
from clarion.db import as_utc
from clarion.models import App, Campaign, CampaignStatus, PushCampaign, Segment
from clarion.subscriber import service as subscribers
from clarion.swrve import campaigns as push_api

HISTORY_LIMIT = 100
SEGMENTS_SHOWN = 500
PUSH_CAMPAIGNS_SHOWN = 500
# Statuses in which a campaign's counters still move by delivery (engagement may come later still).
LIVE_STATUSES = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING)


@dataclass(frozen=True)
class SiteRow:
    app: App
    subscribers: int
    last_campaign: dict[str, Any] | None


async def sites(session: AsyncSession) -> list[SiteRow]:
    counts = await subscribers.active_counts(session)
    rows = []
    for app in await apps.all_apps(session):
        last = await campaigns.recent(session, app, 1)
        rows.append(SiteRow(app, counts.get(app.id, 0), last[0] if last else None))
    return rows


def ctr(funnel: Funnel) -> str:
    """Clicks per notification received, as the vendors' dashboards show it."""
    return f"{100 * funnel.clicked / funnel.received:.1f}%" if funnel.received else "-"


def history_row(campaign: Campaign, funnel: Funnel) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "title": campaign.payload.get("title") or "",
        "message": campaign.payload.get("message") or "",
        "transactional": campaign.is_transactional,
        "send_at": as_utc(campaign.send_at),
        "status": campaign.status,
        "sent": funnel.sent,
        "received": funnel.received,
        "clicked": funnel.clicked,
        "closed": funnel.closed,
        "ctr": ctr(funnel),
    }


async def history(session: AsyncSession, app: App, *, transactional: bool) -> list[dict[str, Any]]:
    found = await campaigns.history(session, app, None, HISTORY_LIMIT, transactional=transactional)
    return [history_row(campaign, await campaigns.funnel(session, campaign)) for campaign in found]


async def counters(session: AsyncSession, campaign: Campaign) -> dict[str, Any]:
    """A campaign's funnel (audience -> sent -> received -> clicked) and its failures by outcome
    (campaign.service.funnel, as /v1 shows it)."""
    funnel = await campaigns.funnel(session, campaign)
    return {
        **asdict(funnel),
        "status": campaign.status,
        "live": campaign.status in LIVE_STATUSES,
        "ctr": ctr(funnel),
    }


async def recipient_count(session: AsyncSession, app: App, spec: AudienceSpec) -> int:
    """How many subscribers a campaign to `spec` would reach now (campaign.service.dry_run, summed)."""
    return sum((await campaigns.dry_run(session, app, spec)).values())


async def segments(session: AsyncSession, app: App) -> list[Segment]:
    """The app's saved segments (the first SEGMENTS_SHOWN made), by name."""
    found = await campaigns.segments(session, app, 0, SEGMENTS_SHOWN)
    return sorted(found, key=lambda segment: segment.name.casefold())


async def segment_sizes(session: AsyncSession, app: App) -> list[tuple[Segment, int]]:
    return [
        (segment, sum((await campaigns.segment_size(session, app, segment)).values()))
        for segment in await segments(session, app)
    ]


async def push_campaigns(session: AsyncSession, app: App) -> list[PushCampaign]:
    """The app's Push API campaigns (the first PUSH_CAMPAIGNS_SHOWN made), newest first."""
    return list(reversed(await push_api.push_campaigns(session, app, 0, PUSH_CAMPAIGNS_SHOWN)))


def plan(app: App, api_campaigns_today: int) -> dict[str, Any]:
    """The Plan and quotas tab: the app's plan, the plans there are and the free plan's daily quota."""
    return {
        "name": app.plan,
        "plans": apps.PLANS,
        "per_day": apps.FREE_CAMPAIGNS_PER_DAY,
        "used": api_campaigns_today,
    }


def platform_breakdown(counts: dict[tuple[str, bool], int]) -> list[dict[str, Any]]:
    """Subscribers by platform, active and not, most active first."""
    platforms = sorted({platform for platform, _ in counts})
    rows = [
        {"platform": p, "active": counts.get((p, True), 0), "inactive": counts.get((p, False), 0)}
        for p in platforms
    ]
    return sorted(rows, key=lambda row: -row["active"])

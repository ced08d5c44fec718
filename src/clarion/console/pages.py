"""What each console page shows, gathered from the features' own services (no rule of their own)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.app_tenant import service as apps
from clarion.campaign import service as campaigns
from clarion.campaign.schemas import AudienceSpec, Funnel
from clarion.db import as_utc, utcnow
from clarion.models import App, Campaign, CampaignStatus, DeliveryStatus, PushCampaign, Segment
from clarion.subscriber import service as subscribers
from clarion.swrve import campaigns as push_api

HISTORY_LIMIT = 100
SEGMENTS_SHOWN = 500
PUSH_CAMPAIGNS_SHOWN = 500
# Statuses in which a campaign's counters still move by delivery (engagement may come later still).
LIVE_STATUSES = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)


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
        "push_tag": campaign.push_tag or "",
        "send_at": as_utc(campaign.send_at),
        "status": campaign.status,
        "sent": funnel.sent,
        "received": funnel.received,
        "clicked": funnel.clicked,
        "closed": funnel.closed,
        "ctr": ctr(funnel),
    }


async def history(
    session: AsyncSession, app: App, *, transactional: bool, push_tag: str = ""
) -> list[dict[str, Any]]:
    tag = push_tag.strip() or None
    found = await campaigns.history(
        session, app, None, HISTORY_LIMIT, transactional=transactional, push_tag=tag
    )
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


# The outcomes table's filter: a ledger row's statuses, and "cancelled" (the rows a cancel ended), as /v1's.
OUTCOME_STATUSES = (*(status.value for status in DeliveryStatus), "cancelled")
OUTCOMES_PAGE = 50


async def outcomes(
    session: AsyncSession, campaign: Campaign, status: str, after: int | None
) -> dict[str, Any]:
    """A page of the campaign's recipients and what became of each (campaign.service.outcomes)."""
    if status and status not in OUTCOME_STATUSES:
        raise errors.InvalidField(f"status must be one of {', '.join(OUTCOME_STATUSES)}", field="status")
    found = await campaigns.outcomes(session, campaign, after, OUTCOMES_PAGE + 1, status=status or None)
    shown = found[:OUTCOMES_PAGE]
    rows = [
        {
            "reg_id": reg_id,
            "platform": platform,
            "status": row_status,
            "attempts": attempts,
            "reason": reason or "",
            "at": as_utc(at),
        }
        for _, reg_id, platform, row_status, attempts, reason, _, at in shown
    ]
    more = len(found) > OUTCOMES_PAGE
    return {"rows": rows, "status": status, "after": after, "next": shown[-1][0] if more else None}


# Buckets of the time series: the smallest that keeps a campaign's span within SERIES_POINTS.
SERIES_INTERVALS = (("minute", 60), ("hour", 3600), ("day", 86400))
SERIES_POINTS = 240
SERIES_KINDS = ("sent", "received", "clicked")


def _interval(campaign: Campaign) -> tuple[str, int]:
    span = ((campaign.finished_at and as_utc(campaign.finished_at)) or utcnow()) - as_utc(campaign.send_at)
    for name, seconds in SERIES_INTERVALS:
        if span.total_seconds() / seconds <= SERIES_POINTS:
            return name, seconds
    return SERIES_INTERVALS[-1]


async def series(session: AsyncSession, campaign: Campaign) -> dict[str, Any]:
    """Sends, receipts and clicks per bucket (campaign.service.series, as /v1's), every bucket from the
    one before the first to the one after the last, so a chart's lines start and end at zero."""
    interval, bucket_s = _interval(campaign)
    counts: dict[int, dict[str, int]] = {}
    for start, kind, n in await campaigns.series(session, campaign, bucket_s):
        counts.setdefault(start, {})[kind] = n
    starts = sorted(counts)
    if starts and (starts[-1] - starts[0]) // bucket_s <= SERIES_POINTS * 4:
        starts = list(range(starts[0] - bucket_s, starts[-1] + 2 * bucket_s, bucket_s))
    points = [
        {"at": start, **{kind: counts.get(start, {}).get(kind, 0) for kind in SERIES_KINDS}}
        for start in starts
    ]
    return {"interval": interval, "points": points}


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

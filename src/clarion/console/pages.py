"""What each console page shows, gathered from the features' own services (no rule of their own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion.app_tenant import service as apps
from clarion.campaign import service as campaigns
from clarion.campaign.schemas import CampaignStats
from clarion.db import as_utc
from clarion.models import App, Campaign, CampaignStatus
from clarion.subscriber import service as subscribers

HISTORY_LIMIT = 100
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


def ctr(stats: CampaignStats) -> str:
    """Clicks per notification received, as the vendors' dashboards show it."""
    return f"{100 * stats.clicked / stats.received:.1f}%" if stats.received else "-"


def history_row(campaign: Campaign, stats: CampaignStats) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "title": campaign.payload.get("title") or "",
        "message": campaign.payload.get("message") or "",
        "transactional": campaign.is_transactional,
        "send_at": as_utc(campaign.send_at),
        "status": stats.status.value,
        "sent": stats.sent,
        "received": stats.received,
        "clicked": stats.clicked,
        "closed": stats.closed,
        "ctr": ctr(stats),
    }


async def history(session: AsyncSession, app: App, *, transactional: bool) -> list[dict[str, Any]]:
    found = await campaigns.history(session, app, HISTORY_LIMIT, transactional=transactional)
    return [history_row(campaign, stats) for campaign, stats in found]


async def counters(session: AsyncSession, app: App, campaign_id: int) -> dict[str, Any]:
    """A campaign's funnel (audience -> sent -> received -> clicked) and its failures by outcome."""
    stats = await campaigns.stats(session, app, campaign_id)
    outcomes = await campaigns.outcomes(session, app, campaign_id)
    return {
        "status": stats.status.value,
        "live": stats.status in LIVE_STATUSES,
        "audience": sum(outcomes.values()),
        "sent": stats.sent,
        "received": stats.received,
        "clicked": stats.clicked,
        "closed": stats.closed,
        "ctr": ctr(stats),
        "pending": outcomes["pending"],
        "gone": outcomes["gone"],
        "rejected": outcomes["rejected"],
        "expired": outcomes["expired"],
        "failed": outcomes["failed"],
    }


def platform_breakdown(counts: dict[tuple[str, bool], int]) -> list[dict[str, Any]]:
    """Subscribers by platform, active and not, most active first."""
    platforms = sorted({platform for platform, _ in counts})
    rows = [
        {"platform": p, "active": counts.get((p, True), 0), "inactive": counts.get((p, False), 0)}
        for p in platforms
    ]
    return sorted(rows, key=lambda row: -row["active"])

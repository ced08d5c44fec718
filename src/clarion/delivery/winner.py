"""An A/B campaign's winner sent to the rest (campaign/variants.py): once `winner_after_s` has passed
since the campaign started, the variant with the best click rate is recorded and the rest's ledger
rows, pending and held back until now, are made due with it; the sweep queues them like any row."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from clarion.campaign import service as campaigns
from clarion.campaign import variants
from clarion.campaign.repository import CampaignRepository
from clarion.db import Database, as_utc, utcnow
from clarion.delivery.repository import LedgerRepository
from clarion.models import Campaign

log = logging.getLogger("clarion.delivery")


async def send_winners(db: Database, now: datetime | None = None) -> int:
    """Pick and release the winners that are due; how many campaigns had theirs picked."""
    now = now or utcnow()
    async with db.session() as session:
        waiting = await CampaignRepository(session).waiting_for_winner()
    picked = 0
    for campaign in waiting:
        if _due(campaign, now):
            picked += await _release(db, campaign.id, now)
    return picked


def _due(campaign: Campaign, now: datetime) -> bool:
    started = campaign.started_at or campaign.send_at
    return (
        campaign.winner_after_s is not None
        and as_utc(started) + timedelta(seconds=campaign.winner_after_s) <= now
    )


async def _release(db: Database, campaign_id: int, now: datetime) -> int:
    async with db.session() as session:
        campaign = await CampaignRepository(session).find(campaign_id)
        if campaign is None or campaign.winner_variant is not None:
            return 0
        groups = await campaigns.variant_funnel(session, campaign) or []
        rates = {int(g["group"]): (g["sent"], g["clicked"]) for g in groups if g["group"].isdigit()}
        winner = variants.winner(rates)
        if not await CampaignRepository(session).set_winner(campaign_id, winner):
            return 0  # another scheduler picked it
        # Due now by the clock the sweep reads (`now` may be a test's, later than it).
        released = await LedgerRepository(session).release_rest(campaign_id, winner, utcnow())
    log.info("campaign %s: variant %s won; sending it to the rest (%s)", campaign_id, winner, released)
    return 1

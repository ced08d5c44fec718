"""Fan-out: turn a claimed campaign's audience into ledger rows and jobs, chunk by chunk.

The ledger is the cursor (recipients are added in subscriber id order), so a fan-out interrupted by a
crash resumes where the last committed chunk ended, and memory holds one chunk at a time.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from clarion import metrics
from clarion.audience import service as audiences
from clarion.campaign.repository import CampaignRepository
from clarion.db import Database, utcnow
from clarion.delivery import journal
from clarion.delivery.jobs import deliver_job
from clarion.delivery.repository import LedgerRepository
from clarion.models import Campaign
from clarion.queue import Queue

log = logging.getLogger("clarion.fanout")


async def _start(db: Database, campaign_id: int) -> Campaign | None:
    now = utcnow()
    async with db.session() as session:
        campaign = await CampaignRepository(session).mark_started(campaign_id, now)
        if campaign is not None:
            journal.started(campaign, now)
        return campaign


async def fan_out(
    db: Database,
    queue: Queue,
    campaign_id: int,
    *,
    platforms: tuple[str, ...],
    chunk_size: int,
    lease_s: float,
    queue_grace_s: float,
) -> int:
    """Add every recipient to the ledger and queue them in jobs; returns how many were added."""
    campaign = await _start(db, campaign_id)
    if campaign is None:
        return 0
    condition = audiences.recipients(campaign.app_id, campaign.id, campaign.audience, platforms)
    added = 0
    while True:
        now = utcnow()
        async with db.session() as session:
            ledger = LedgerRepository(session)
            cursor = await ledger.fanout_cursor(campaign_id)
            page = audiences.page(condition, cursor, chunk_size)
            queued_until = now + timedelta(seconds=queue_grace_s)
            delivery_ids = await ledger.add_page(campaign_id, page, now, queued_until)
            await CampaignRepository(session).renew_fanout(campaign_id, now + timedelta(seconds=lease_s))
        # Enqueued only after the rows are committed: a worker never sees a job before its data.
        if not delivery_ids:
            # Only an exhausted audience adds nothing: the cursor is the ledger's highest recipient,
            # so every id above it is new (unless a concurrent fan-out of this campaign took it).
            break
        await queue.put(deliver_job(campaign_id, delivery_ids))
        added += len(delivery_ids)
        metrics.FANOUT_RECIPIENTS.inc(len(delivery_ids))
    await _finish(db, campaign_id)
    log.info(
        "campaign %s fanned out to %s recipients", campaign_id, added, extra={"campaign_id": campaign_id}
    )
    return added


async def _finish(db: Database, campaign_id: int) -> None:
    async with db.session() as session:
        await CampaignRepository(session).finish_fanout(campaign_id)
        ledger = LedgerRepository(session)
        done = await ledger.complete_if_done(campaign_id, utcnow())
        counts = await ledger.status_counts(campaign_id) if done else None
    if counts is not None:
        journal.finished(campaign_id, counts)

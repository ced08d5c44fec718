"""Fan-out: a campaign's audience cut into slices that any worker fans out, a step at a time.

`plan` (the scheduler that claimed the campaign) counts the audience and cuts its subscriber ids into
ranges, `fanout_slices` rows, and queues a `fanout` job per slice. `step` (whichever consumer takes
that job, in any process) claims the slice with a lease, adds a few pages of it to the ledger, queues
their `deliver` jobs, and queues the slice's next step behind them: the fan-out advances as fast as
delivery drains the queue, and the slices of one campaign advance in every worker at once.

The ledger is each slice's cursor (its recipients are added in subscriber id order, and the cursor is
the highest of them within the range), so a step interrupted by a crash loses nothing and adds
nothing twice: the slice's lease lapses, the sweep queues it again, and it resumes after the last
committed page. Memory holds one page per running step.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.audience import service as audiences
from clarion.audience.repository import AudienceRepository
from clarion.campaign.repository import CampaignRepository
from clarion.db import Database, utcnow
from clarion.delivery.jobs import deliver_job, fanout_job
from clarion.delivery.repository import LedgerRepository, SliceRange, SliceRepository
from clarion.queue import Queue

log = logging.getLogger("clarion.fanout")

# Recipients per slice: a slice's fan-out takes about a second of a worker's time (≈ 10 µs per
# recipient on either database), so a campaign of 100,000 is 20 slices that many workers share...
SLICE_RECIPIENTS = 5_000
# ...up to this many, so that the steps queued at once (a slice's next step and its deliver jobs
# each) stay a few tens of thousands of recipients, whatever the campaign's size.
MAX_SLICES = 32
# Pages a step adds before queueing the slice's next step behind their deliver jobs.
STEP_PAGES = 2


@dataclass(frozen=True, slots=True)
class FanoutSettings:
    owner: str
    platforms: tuple[str, ...]
    chunk_size: int
    lease_s: float
    queue_grace_s: float

    def queued_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.queue_grace_s)


def cut(count: int, first_id: int, last_id: int) -> list[SliceRange]:
    """`count` recipients between first_id and last_id as ranges of about SLICE_RECIPIENTS each.

    Equal id spans: an audience's ids are about evenly spread over its range (ids are handed out in
    registration order), and a range that holds more than its share only takes longer.
    """
    if count == 0:
        return []
    slices = min(MAX_SLICES, math.ceil(count / SLICE_RECIPIENTS))
    width = math.ceil((last_id - first_id + 1) / slices)
    return [
        SliceRange(start, min(last_id, start + width - 1)) for start in range(first_id, last_id + 1, width)
    ]


async def plan(db: Database, queue: Queue, campaign_id: int, config: FanoutSettings) -> int:
    """Cut a claimed campaign into slices (once: a resumed plan keeps them) and queue those to do.

    Returns how many slices were queued.
    """
    now = utcnow()
    async with db.session() as session:
        campaign = await CampaignRepository(session).mark_started(campaign_id, now)
        if campaign is None:
            return 0
        slices = SliceRepository(session)
        to_do = await slices.undone(campaign_id)
        if to_do is None:
            audience = campaign.audience
            condition = audiences.recipients(campaign.app_id, campaign.id, audience, config.platforms)
            ranges = cut(*await AudienceRepository(session).span(condition))
            to_do = await slices.add(campaign_id, ranges, config.queued_until(now))
        await CampaignRepository(session).hand_to_slices(campaign_id)
        if not to_do:
            await _finish_fanout(session, campaign_id, now)
    # Queued only after the slices are committed: a worker never sees a job before its data. A slice
    # whose job is lost (or was queued by an earlier plan) is queued again by the sweep.
    for slice_id in to_do:
        await queue.put(fanout_job(campaign_id, slice_id))
    log.info("campaign %s: fan-out in %s slices", campaign_id, len(to_do))
    return len(to_do)


async def step(db: Database, queue: Queue, campaign_id: int, slice_id: int, config: FanoutSettings) -> int:
    """Add up to STEP_PAGES pages of the slice to the ledger and queue them; then queue the slice's
    next step, or mark it done. Returns how many recipients were added."""
    held = await _claim(db, campaign_id, slice_id, config)
    if held is None:
        return 0  # done, held by another worker, or its campaign stopped sending
    bounds, condition = held
    added = 0
    for _ in range(STEP_PAGES):
        now = utcnow()
        async with db.session() as session:
            lease_until = now + timedelta(seconds=config.lease_s)
            if not await SliceRepository(session).renew(slice_id, campaign_id, config.owner, lease_until):
                return added  # lost (its lease lapsed and another took it) or its campaign cancelled
            ledger = LedgerRepository(session)
            cursor = await ledger.fanout_cursor(campaign_id, bounds.first_id, bounds.last_id)
            page = audiences.page(condition, cursor, config.chunk_size, upto=bounds.last_id)
            delivery_ids = await ledger.add_page(campaign_id, page, now, config.queued_until(now))
        if not delivery_ids:
            # Only an exhausted slice adds nothing: every id above the cursor is new to the ledger.
            await _finish_slice(db, campaign_id, slice_id, config.owner)
            return added
        await queue.put(deliver_job(campaign_id, delivery_ids))
        added += len(delivery_ids)
    async with db.session() as session:
        await SliceRepository(session).release(slice_id, config.owner, config.queued_until(utcnow()))
    await queue.put(fanout_job(campaign_id, slice_id))
    return added


async def _claim(
    db: Database, campaign_id: int, slice_id: int, config: FanoutSettings
) -> tuple[SliceRange, ColumnElement[bool]] | None:
    now = utcnow()
    async with db.session() as session:
        lease_until = now + timedelta(seconds=config.lease_s)
        bounds = await SliceRepository(session).claim(slice_id, campaign_id, config.owner, now, lease_until)
        campaign = await CampaignRepository(session).find(campaign_id) if bounds else None
        if bounds is None or campaign is None:
            return None
        condition = audiences.recipients(campaign.app_id, campaign.id, campaign.audience, config.platforms)
        return bounds, condition


async def _finish_slice(db: Database, campaign_id: int, slice_id: int, owner: str) -> None:
    async with db.session() as session:
        if await SliceRepository(session).finish(slice_id, campaign_id, owner):
            await _finish_fanout(session, campaign_id, utcnow())
            log.info("campaign %s fanned out", campaign_id)


async def _finish_fanout(session: AsyncSession, campaign_id: int, now: datetime) -> None:
    await CampaignRepository(session).finish_fanout(campaign_id)
    await LedgerRepository(session).complete_if_done(campaign_id, now)

"""The delivery feature's background work, handed to the runner by the composition root.

Periodic: start due campaigns (each fan-out runs beside the scheduler) and sweep the ledger for rows
whose lease lapsed. Jobs: `deliver` a chunk of ledger rows.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from datetime import timedelta

from clarion import outage
from clarion.campaign.repository import CampaignRepository
from clarion.config import Settings
from clarion.db import Database, utcnow
from clarion.delivery import journal
from clarion.delivery.fanout import fan_out
from clarion.delivery.jobs import DELIVER, deliver_jobs
from clarion.delivery.repository import LedgerRepository
from clarion.delivery.service import Deliverer
from clarion.provider.registry import build_providers
from clarion.queue import Job, Queue, Registry

log = logging.getLogger("clarion.delivery")

# Queued rows are left alone by the sweeper this long: a job waits in a busy queue for a while.
QUEUE_GRACE_FACTOR = 10
SWEEP_EVERY_S = 1.0
SWEEP_BATCH = 5000
# Campaigns claimed per scheduler tick.
START_BATCH = 16


def queue_grace_s(settings: Settings) -> float:
    return settings.lease_s * QUEUE_GRACE_FACTOR


class DeliveryTasks:
    def __init__(self, settings: Settings, db: Database, queue: Queue, registry: Registry) -> None:
        self.settings = settings
        self.db = db
        self.queue = queue
        self.registry = registry
        # This process's name on the ledger rows it holds.
        self.owner = uuid.uuid4().hex[:12]
        self.deliverer: Deliverer | None = None

    async def open(self) -> None:
        self.deliverer = Deliverer(
            self.db,
            build_providers(self.settings),
            lease_s=self.settings.delivery_lease_s,
            renew_s=self.settings.delivery_renew_s,
            concurrency=self.settings.worker_concurrency,
            retry_base_s=self.settings.retry_base_s,
            retry_max_s=self.settings.retry_max_s,
        )

    async def close(self) -> None:
        if self.deliverer is not None:
            await self.deliverer.close()

    async def reset_leases(self) -> None:
        async with self.db.session() as session:
            await LedgerRepository(session).reset_leases(utcnow())

    async def release_queued(self) -> None:
        """The queue lost its jobs: the sweep queues their rows again now, not after the grace."""
        async with self.db.session() as session:
            await LedgerRepository(session).release_queued(utcnow())

    async def start_due(self) -> None:
        now = utcnow()
        async with self.db.session() as session:
            # The fan-out's lease is renewed with each page it adds: as short as the delivery rows'.
            lease_until = now + timedelta(seconds=self.settings.delivery_lease_s)
            claimed = await CampaignRepository(session).claim_due(now, lease_until, limit=START_BATCH)
        for campaign_id in claimed:
            self.registry.spawn(self._fan_out(campaign_id), name=f"fanout-{campaign_id}")

    async def _fan_out(self, campaign_id: int) -> int:
        """Fan out; while the database or the queue is unreachable, resume (from the ledger) with back-off.

        Resuming here, not after the fan-out's lease lapses, is what gets a campaign going again within
        seconds of an outage's end.
        """
        assert self.deliverer is not None
        deliverer = self.deliverer
        try:
            return await outage.retrying(
                lambda: fan_out(
                    self.db,
                    self.queue,
                    campaign_id,
                    platforms=deliverer.platforms,
                    chunk_size=self.settings.chunk_size,
                    lease_s=self.settings.delivery_lease_s,
                    queue_grace_s=queue_grace_s(self.settings),
                )
            )
        except asyncio.CancelledError:
            raise  # a fan-out resumes from the ledger: stopping it mid-way loses nothing
        except Exception:
            log.exception("fan-out of campaign %s failed; another scheduler will resume it", campaign_id)
            return 0

    async def sweep(self) -> None:
        """Queue again the rows whose lease lapsed; mark sent the campaigns with nothing pending."""
        now = utcnow()
        async with self.db.session() as session:
            queued_until = now + timedelta(seconds=queue_grace_s(self.settings))
            ledger = LedgerRepository(session)
            lapsed = await ledger.lapsed(now, queued_until, SWEEP_BATCH)
            finished = await CampaignRepository(session).complete_finished(now)
            counts = [(campaign_id, await ledger.status_counts(campaign_id)) for campaign_id in finished]
        for campaign_id, statuses in counts:
            journal.finished(campaign_id, statuses)
        by_campaign: dict[int, list[int]] = defaultdict(list)
        for delivery_id, campaign_id in lapsed:
            by_campaign[campaign_id].append(delivery_id)
        for campaign_id, ids in by_campaign.items():
            for job in deliver_jobs(campaign_id, ids, self.settings.chunk_size):
                await self.queue.put(job)

    async def deliver(self, job: Job) -> None:
        assert self.deliverer is not None
        await self.deliverer.run(int(job.key), job.ids, self.owner)


def register(registry: Registry, settings: Settings, db: Database, queue: Queue) -> DeliveryTasks:
    tasks = DeliveryTasks(settings, db, queue, registry)
    registry.on_start(tasks.open)
    registry.on_reset(tasks.reset_leases)
    registry.on_queue_lost(tasks.release_queued)
    registry.every("start due campaigns", tasks.start_due)
    registry.every("sweep the ledger", tasks.sweep, every_s=SWEEP_EVERY_S)
    registry.handle(DELIVER, tasks.deliver)
    registry.on_stop(tasks.close)
    return tasks

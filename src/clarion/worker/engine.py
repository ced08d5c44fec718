"""The delivery engine of one process: scheduler, sweeper and job consumers, with graceful stop.

`clarion serve` runs it beside the HTTP API (default in-process queue); `clarion worker` runs it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from datetime import timedelta

from clarion.campaign.repository import CampaignRepository
from clarion.config import Settings
from clarion.db import Database, utcnow
from clarion.delivery.fanout import fan_out
from clarion.delivery.repository import LedgerRepository
from clarion.delivery.service import Deliverer
from clarion.models import Batch
from clarion.provider.registry import build_providers
from clarion.swrve import service as swrve
from clarion.swrve.repository import SwrveRepository
from clarion.worker.queue import Job, Queue, Taken

log = logging.getLogger("clarion.engine")

# Queued rows are left alone by the sweeper this long: a job waits in a busy queue for a while.
QUEUE_GRACE_FACTOR = 10
SWEEP_EVERY_S = 1.0
SWEEP_BATCH = 5000


class Engine:
    def __init__(self, settings: Settings, db: Database, queue: Queue, wakeup: asyncio.Event) -> None:
        self.settings = settings
        self.db = db
        self.queue = queue
        self.wakeup = wakeup
        self.owner = f"{uuid.uuid4().hex[:12]}"
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._fanouts: set[asyncio.Task[int]] = set()
        # Consumers waiting for a job (not holding one): safe to cancel at once on stop.
        self._idle: set[asyncio.Task[None] | None] = set()
        self.deliverer: Deliverer | None = None

    @property
    def queue_grace_s(self) -> float:
        return self.settings.lease_s * QUEUE_GRACE_FACTOR

    async def start(self) -> None:
        self.deliverer = Deliverer(
            self.db,
            build_providers(self.settings),
            lease_s=self.settings.lease_s,
            concurrency=self.settings.worker_concurrency,
            retry_base_s=self.settings.retry_base_s,
            retry_max_s=self.settings.retry_max_s,
        )
        if not self.queue.durable:
            # The in-process queue died with the last process: whatever it held is free again.
            async with self.db.session() as session:
                await LedgerRepository(session).reset_leases(utcnow())
                await SwrveRepository(session).reset_leases(utcnow())
        self._tasks.append(asyncio.create_task(self._schedule(), name="scheduler"))
        for index in range(self.settings.worker_jobs):
            self._tasks.append(asyncio.create_task(self._consume(), name=f"consumer-{index}"))

    async def stop(self) -> None:
        """Stop taking work, let in-flight jobs finish (bounded by request timeouts), then close."""
        self._stopping.set()
        self.wakeup.set()
        for fanout in self._fanouts:
            fanout.cancel()  # a fan-out resumes from the ledger: stopping it mid-way loses nothing
        for waiting in self._idle:
            if waiting is not None:
                waiting.cancel()  # a job taken but not started is redelivered (lease / XAUTOCLAIM)
        await asyncio.gather(*self._tasks, *self._fanouts, return_exceptions=True)
        self._tasks.clear()
        if self.deliverer is not None:
            await self.deliverer.close()
        await self.queue.close()

    async def _schedule(self) -> None:
        last_sweep = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                await self._start_due()
                await self._process_batches()
                if loop.time() - last_sweep >= SWEEP_EVERY_S:
                    last_sweep = loop.time()
                    await self._sweep()
            except Exception:
                log.exception("scheduler tick failed; retrying")
            await self._sleep(self.settings.scheduler_interval_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), seconds)
        self.wakeup.clear()

    async def _start_due(self) -> None:
        now = utcnow()
        async with self.db.session() as session:
            lease_until = now + timedelta(seconds=self.settings.lease_s)
            claimed = await CampaignRepository(session).claim_due(now, lease_until, limit=16)
        for campaign_id in claimed:
            task = asyncio.create_task(self._fan_out(campaign_id), name=f"fanout-{campaign_id}")
            self._fanouts.add(task)
            task.add_done_callback(self._fanouts.discard)

    async def _process_batches(self) -> None:
        """Swrve batches accepted by the API: parsed, checked and put in the ledger, one at a time."""
        while not self._stopping.is_set():
            now = utcnow()
            async with self.db.session() as session:
                lease_until = now + timedelta(seconds=self.settings.lease_s)
                batch = await SwrveRepository(session).claim_batch(now, lease_until)
            if batch is None:
                return
            try:
                await self._process_batch(batch)
            except Exception:
                # The lease lapses and the batch is tried again, up to MAX_PROCESS_ATTEMPTS.
                log.exception("processing batch %s failed (attempt %s)", batch.id, batch.attempts)

    async def _process_batch(self, batch: Batch) -> None:
        queued_until = utcnow() + timedelta(seconds=self.queue_grace_s)
        async with self.db.session() as session:
            batch = await session.merge(batch)
            if batch.attempts > swrve.MAX_PROCESS_ATTEMPTS:
                await swrve.give_up(session, batch)
                return
            campaign_id, pending = await swrve.process(session, batch, queued_until)
        size = self.settings.chunk_size
        for start in range(0, len(pending), size):
            await self.queue.put(Job(campaign_id, tuple(pending[start : start + size])))

    async def _fan_out(self, campaign_id: int) -> int:
        assert self.deliverer is not None
        try:
            return await fan_out(
                self.db,
                self.queue,
                campaign_id,
                platforms=self.deliverer.platforms,
                chunk_size=self.settings.chunk_size,
                lease_s=self.settings.lease_s,
                queue_grace_s=self.queue_grace_s,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("fan-out of campaign %s failed; another scheduler will resume it", campaign_id)
            return 0

    async def _sweep(self) -> None:
        now = utcnow()
        async with self.db.session() as session:
            queued_until = now + timedelta(seconds=self.queue_grace_s)
            ledger = LedgerRepository(session)
            lapsed = await ledger.lapsed(now, queued_until, SWEEP_BATCH)
            await ledger.complete_finished(now)
        by_campaign: dict[int, list[int]] = defaultdict(list)
        for delivery_id, campaign_id in lapsed:
            by_campaign[campaign_id].append(delivery_id)
        size = self.settings.chunk_size
        for campaign_id, ids in by_campaign.items():
            for start in range(0, len(ids), size):
                await self.queue.put(Job(campaign_id, tuple(ids[start : start + size])))

    async def _take(self) -> Taken | None:
        me = asyncio.current_task()
        self._idle.add(me)
        try:
            return await self.queue.take(timeout_s=0.5)
        finally:
            self._idle.discard(me)

    async def _consume(self) -> None:
        assert self.deliverer is not None
        while not self._stopping.is_set():
            try:
                taken = await self._take()
                if taken is None:
                    continue
                await self.deliverer.run(taken.job.campaign_id, taken.job.delivery_ids, self.owner)
                await self.queue.ack(taken)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The job stays unacknowledged / its rows stay leased: it is retried after the lease.
                log.exception("a delivery job failed")
                await asyncio.sleep(0.5)

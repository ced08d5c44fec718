"""The Swrve surface's background work: processing accepted batches as queue jobs, and folding the
ledger rows of batches past retention once their per-user report is kept in the batch itself.

A batch's job is queued once the accepting transaction has committed (`enqueue`); a periodic sweep
queues again the accepted batches whose lease lapsed (a lost job, a processor that failed or died).
The database stays the truth: a job carries the batch id and the attempt it is for, nothing else.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from clarion import outage
from clarion.config import Settings
from clarion.db import Database, utcnow
from clarion.delivery.jobs import deliver_jobs
from clarion.delivery.tasks import FOLD_EVERY_S, Retention, queue_grace_s
from clarion.models import Batch
from clarion.queue import Job, Queue, Registry
from clarion.swrve import process as processing
from clarion.swrve import report
from clarion.swrve.repository import SwrveRepository

log = logging.getLogger("clarion.swrve")

PROCESS_BATCH = "swrve.process_batch"
# Lapsed batches queued again per sweep.
SWEEP_BATCH = 100
# The lapsed-batch sweep's period: a batch's job is lost only with a crash or a lost queue, so a
# second more does no harm, while sweeping on every scheduler tick (0.2 s) was a third of an idle
# worker's CPU together with the tick's other queries (py-spy).
SWEEP_EVERY_S = 1.0


def process_job(batch_id: str, attempts: int = 0) -> Job:
    """Process the batch if it is still accepted at `attempts` (so a duplicate job does nothing)."""
    return Job(PROCESS_BATCH, batch_id, (attempts,))


async def enqueue(queue: Queue | None, batch_id: str) -> None:
    """Queue a just accepted batch. A failure is not the client's: the sweep queues it later."""
    if queue is None:
        return
    try:
        await queue.put(process_job(batch_id))
    except Exception:
        log.warning("batch %s not queued now; the sweep will queue it", batch_id, exc_info=True)


class SwrveTasks:
    def __init__(self, settings: Settings, db: Database, queue: Queue) -> None:
        self.settings = settings
        self.db = db
        self.queue = queue

    async def reset_leases(self) -> None:
        async with self.db.session() as session:
            await SwrveRepository(session).reset_leases(utcnow())

    async def release_queued(self) -> None:
        """The queue lost its jobs: the sweep queues the batches it held again now."""
        now = utcnow()
        async with self.db.session() as session:
            held_until = now + timedelta(seconds=self.settings.lease_s)
            await SwrveRepository(session).release_queued(now, held_until)

    async def sweep(self) -> None:
        now = utcnow()
        queued_until = now + timedelta(seconds=queue_grace_s(self.settings))
        async with self.db.session() as session:
            lapsed = await SwrveRepository(session).lapsed_batches(now, queued_until, SWEEP_BATCH)
        for batch_id, attempts in lapsed:
            await self.queue.put(process_job(batch_id, attempts))

    async def process_batch(self, job: Job) -> None:
        now = utcnow()
        async with self.db.session() as session:
            lease_until = now + timedelta(seconds=self.settings.lease_s)
            batch = await SwrveRepository(session).claim_batch(job.key, job.ids[0], now, lease_until)
        if batch is None:
            return  # processed already, or another job holds this attempt
        try:
            # While the database or the queue is away the attempt is not the batch's fault: it is
            # retried while the claim's lease holds (processing is idempotent: inserts are, and the
            # reports are rewritten); after that the sweep queues the batch again.
            await outage.retrying(lambda: self._process(batch), for_s=self.settings.lease_s)
        except Exception as exc:
            if outage.unreachable(exc) is not None:
                log.warning("batch %s waits for its lease to lapse: the database or queue is away", batch.id)
                return
            # The lease lapses and the sweep queues the batch again, up to MAX_PROCESS_ATTEMPTS.
            log.exception("processing batch %s failed (attempt %s)", batch.id, batch.attempts)

    async def fold_batch_ledger(self, horizon: datetime, now: datetime) -> int:
        """One batch's ledger folded past retention, its report frozen first (`report.fold_batch_ledger`)."""
        async with self.db.session() as session:
            return await report.fold_batch_ledger(session, horizon, now)

    async def _process(self, claimed: Batch) -> None:
        queued_until = utcnow() + timedelta(seconds=queue_grace_s(self.settings))
        async with self.db.session() as session:
            batch = await SwrveRepository(session).batch(claimed.id)
            if batch is None:
                return
            if batch.attempts > processing.MAX_PROCESS_ATTEMPTS:
                await processing.give_up(session, batch)
                return
            campaign_id, pending = await processing.process(session, batch, queued_until)
        # Queued only after the rows are committed: a worker never sees a job before its data.
        for job in deliver_jobs(campaign_id, pending, self.settings.chunk_size):
            await self.queue.put(job)


def register(registry: Registry, settings: Settings, db: Database, queue: Queue) -> SwrveTasks:
    tasks = SwrveTasks(settings, db, queue)
    registry.on_reset(tasks.reset_leases)
    registry.on_queue_lost(tasks.release_queued)
    registry.every("queue lapsed batches", tasks.sweep, every_s=SWEEP_EVERY_S)
    registry.handle(PROCESS_BATCH, tasks.process_batch)
    retention = Retention(settings, registry, tasks.fold_batch_ledger, "batch ledger retention")
    registry.every("fold batch ledgers past retention", retention.tick, every_s=FOLD_EVERY_S)
    return tasks

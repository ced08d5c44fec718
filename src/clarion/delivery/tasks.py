"""The delivery feature's background work, handed to the runner by the composition root.

Periodic: start due campaigns (each cut into fan-out slices beside the scheduler), sweep the ledger
and the slices for what lapsed, and fold finished campaigns' rows past retention into their counters.
Jobs: `fanout` a step of a slice, `deliver` a chunk of ledger rows.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from clarion import outage
from clarion.campaign.repository import CampaignRepository
from clarion.config import Settings
from clarion.db import Database, utcnow
from clarion.delivery import fanout, journal, winner
from clarion.delivery.jobs import DELIVER, FANOUT, deliver_jobs, fanout_job
from clarion.delivery.pace import Pacer
from clarion.delivery.repository import LedgerRepository, SliceRepository
from clarion.delivery.service import Deliverer
from clarion.pacing import limiter
from clarion.pacing.limiter import Clock, SystemClock
from clarion.pictures import service as pictures
from clarion.pictures.fetch import Fetcher
from clarion.provider.registry import build_providers
from clarion.queue import Job, Queue, Registry

log = logging.getLogger("clarion.delivery")

# Queued rows are left alone by the sweeper this long: a job waits in a busy queue for a while.
QUEUE_GRACE_FACTOR = 10
SWEEP_EVERY_S = 1.0
# How often a scheduler looks for A/B winners that are due (delivery/winner.py): a second late at most.
WINNER_EVERY_S = 1.0
SWEEP_BATCH = 5000
# Campaigns claimed per scheduler tick.
START_BATCH = 16
# Ledger retention: rows deleted per transaction (each a short write, so delivery never waits long
# behind it), transactions per pass, and how often each worker runs a pass: up to 100,000 rows a
# minute per worker, far more than campaigns add on a machine that delivers ~5,000 a second at peak
# for a few hours a day.
FOLD_BATCH = 5000
FOLD_BATCHES_PER_PASS = 20
FOLD_EVERY_S = 60.0


def queue_grace_s(settings: Settings) -> float:
    return settings.lease_s * QUEUE_GRACE_FACTOR


class DeliveryTasks:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        queue: Queue,
        registry: Registry,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        # The scheduler's clock: when campaigns are due and released (tests inject one).
        self.clock = clock
        self.db = db
        self.queue = queue
        self.registry = registry
        # This process's name on the ledger rows it holds.
        self.owner = uuid.uuid4().hex[:12]
        self.deliverer: Deliverer | None = None
        self.pictures: pictures.Pictures | None = None
        self._stepping: set[int] = set()  # the fan-out slices this process is stepping now
        # The pacing clock (docs/pacing.md); tests hand in a faster one before `open`.
        self.pace_clock: Clock = SystemClock()

    async def open(self) -> None:
        if self.settings.public_url is None:
            log.warning(
                "CLARION_PUBLIC_URL is unset: notification pictures go out as their original URLs, "
                "unprocessed (set it to the URL at which browsers reach this server to have them "
                "checked, normalised and served by Clarion)"
            )
        else:
            fetcher = Fetcher.from_settings(self.settings)
            lease_s = self.settings.delivery_lease_s
            self.pictures = pictures.Pictures(fetcher, self.settings.public_url, lease_s)
        self.deliverer = Deliverer(
            self.db,
            build_providers(self.settings),
            lease_s=self.settings.delivery_lease_s,
            renew_s=self.settings.delivery_renew_s,
            concurrency=self.settings.worker_concurrency,
            retry_base_s=self.settings.retry_base_s,
            retry_max_s=self.settings.retry_max_s,
            pacer=Pacer(
                limiter.connect(self.settings.queue_url, self.db),
                self.pace_clock,
                {"android": self.settings.fcm_rate_per_minute},
            ),
        )

    async def close(self) -> None:
        if self.deliverer is not None:
            await self.deliverer.close()
        if self.pictures is not None:
            await self.pictures.fetcher.aclose()

    async def reset_leases(self) -> None:
        async with self.db.session() as session:
            await LedgerRepository(session).reset_leases(utcnow())
            await SliceRepository(session).reset_leases(utcnow())

    async def release_queued(self) -> None:
        """The queue lost its jobs: the sweep queues their rows and slices again now, not after the grace."""
        async with self.db.session() as session:
            await LedgerRepository(session).release_queued(utcnow())
            await SliceRepository(session).release_queued(utcnow())

    def _fanout_settings(self) -> fanout.FanoutSettings:
        assert self.deliverer is not None
        return fanout.FanoutSettings(
            owner=self.owner,
            platforms=self.deliverer.platforms,
            chunk_size=self.settings.chunk_size,
            lease_s=self.settings.delivery_lease_s,
            queue_grace_s=queue_grace_s(self.settings),
            clock=self.clock,
        )

    async def start_due(self) -> None:
        now = self.clock()
        async with self.db.session() as session:
            # Held only until the campaign is cut into slices (each then has its own lease).
            lease_until = now + timedelta(seconds=self.settings.delivery_lease_s)
            claimed = await CampaignRepository(session).claim_due(now, lease_until, limit=START_BATCH)
        for campaign_id in claimed:
            self.registry.spawn(self._plan(campaign_id), name=f"fanout-plan-{campaign_id}")

    async def _plan(self, campaign_id: int) -> int:
        """Prepare the campaign's pictures (once), then cut it into slices; while the database or the
        queue is unreachable, try again with back-off (resuming here, not after the claim's lease
        lapses, gets a campaign going within seconds of an outage's end)."""
        try:
            await self._prepare_pictures(campaign_id)
            return await outage.retrying(
                lambda: fanout.plan(self.db, self.queue, campaign_id, self._fanout_settings())
            )
        except asyncio.CancelledError:
            raise  # a plan is one transaction: stopped before its commit, it is made again
        except Exception:
            log.exception("planning the fan-out of campaign %s failed; another scheduler will", campaign_id)
            return 0

    async def _prepare_pictures(self, campaign_id: int) -> None:
        """Pictures never stop a campaign: a failure that is no outage is logged, and it goes out
        with the pictures' original URLs."""
        prepared = self.pictures
        if prepared is None:
            return
        try:
            await outage.retrying(lambda: pictures.prepare(self.db, campaign_id, prepared))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("campaign %s: preparing its pictures failed; they go out unprocessed", campaign_id)

    async def fan_out(self, job: Job) -> None:
        """A step of one slice (an outage is retried by the runner: the step resumes from the ledger)."""
        [slice_id] = job.ids
        if slice_id in self._stepping:
            return  # a duplicate job: the step in hand goes on and queues the slice's next one
        # One step of a slice at a time in this process: what lets a step take back a slice that this
        # process's previous step left held (SliceRepository.claim).
        self._stepping.add(slice_id)
        try:
            await fanout.step(self.db, self.queue, int(job.key), slice_id, self._fanout_settings())
        finally:
            self._stepping.discard(slice_id)

    async def sweep(self) -> None:
        """Queue again the rows and slices whose lease lapsed (and the rows whose release has come);
        mark sent the campaigns done."""
        now = self.clock()
        async with self.db.session() as session:
            queued_until = now + timedelta(seconds=queue_grace_s(self.settings))
            held = self.deliverer.recorder.held_ids() if self.deliverer is not None else []
            ledger = LedgerRepository(session)
            lapsed = await ledger.lapsed(now, queued_until, SWEEP_BATCH, held)
            slices = await SliceRepository(session).lapsed(now, queued_until, SWEEP_BATCH)
            campaigns = CampaignRepository(session)
            await campaigns.finish_sliced_fanouts()
            finished = await campaigns.complete_finished(now)
            counts = [(campaign_id, await ledger.status_counts(campaign_id)) for campaign_id in finished]
        for campaign_id, statuses in counts:
            journal.finished(campaign_id, statuses)
        for slice_id, campaign_id in slices:
            await self.queue.put(fanout_job(campaign_id, slice_id))
        by_campaign: dict[int, list[int]] = defaultdict(list)
        for delivery_id, campaign_id in lapsed:
            by_campaign[campaign_id].append(delivery_id)
        for campaign_id, ids in by_campaign.items():
            for job in deliver_jobs(campaign_id, ids, self.settings.chunk_size):
                await self.queue.put(job)

    async def send_winners(self) -> None:
        await winner.send_winners(self.db)

    async def deliver(self, job: Job) -> None:
        assert self.deliverer is not None
        await self.deliverer.run(int(job.key), job.ids, self.owner)


# One retention step: given the horizon and now, fold what one transaction may; the rows folded.
FoldStep = Callable[[datetime, datetime], Awaitable[int]]


class Retention:
    """Ledger retention passes, run beside the scheduler (its tick never waits for one) at most one
    at a time per process; each step is its own transaction, so a pass stopped mid-way loses nothing
    and the next takes up where it stopped. Features hand in their own step (`fold_step` here,
    the Swrve batches' in swrve/tasks.py)."""

    def __init__(self, settings: Settings, registry: Registry, step: FoldStep, name: str) -> None:
        self.retention_days = settings.ledger_retention_days
        self.registry = registry
        self.step = step
        self.name = name
        self._running = False

    async def tick(self) -> None:
        if self.retention_days == 0 or self._running:
            return
        self._running = True
        self.registry.spawn(self._beside(), name=self.name)

    async def _beside(self) -> None:
        try:
            await self.run_pass()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if outage.unreachable(exc) is None:
                log.exception("%s: a pass failed; the next one resumes it", self.name)
        finally:
            self._running = False

    async def run_pass(self) -> int:
        """Up to FOLD_BATCHES_PER_PASS steps, until one finds nothing; the rows folded."""
        folded = 0
        loop = asyncio.get_running_loop()
        for _ in range(FOLD_BATCHES_PER_PASS):
            now, started = utcnow(), loop.time()
            done = await self.step(now - timedelta(days=self.retention_days), now)
            if done == 0:
                break
            folded += done
            # Rest as long as the step took: on SQLite (one writer) delivery's writes get the lock at
            # least half of the time while a pass runs.
            await asyncio.sleep(loop.time() - started)
        if folded:
            log.info("%s: %s ledger rows folded into their campaigns' counters", self.name, folded)
        return folded


def fold_step(db: Database, limit: int = FOLD_BATCH) -> FoldStep:
    """One transaction: up to `limit` rows of one finished campaign past the horizon folded."""

    async def step(horizon: datetime, now: datetime) -> int:
        async with db.session() as session:
            campaign_id = await CampaignRepository(session).claim_foldable(horizon)
            if campaign_id is None:
                return 0
            counts = await LedgerRepository(session).fold(campaign_id, horizon, now, limit)
        return sum(counts.values())

    return step


def register(registry: Registry, settings: Settings, db: Database, queue: Queue) -> DeliveryTasks:
    tasks = DeliveryTasks(settings, db, queue, registry)
    registry.on_start(tasks.open)
    registry.on_reset(tasks.reset_leases)
    registry.on_queue_lost(tasks.release_queued)
    registry.every("start due campaigns", tasks.start_due)
    registry.every("sweep the ledger", tasks.sweep, every_s=SWEEP_EVERY_S)
    registry.every("send the A/B winners", tasks.send_winners, every_s=WINNER_EVERY_S)
    retention = Retention(settings, registry, fold_step(db), "ledger retention")
    registry.every("fold the ledger past retention", retention.tick, every_s=FOLD_EVERY_S)
    registry.handle(FANOUT, tasks.fan_out)
    registry.handle(DELIVER, tasks.deliver)
    registry.on_stop(tasks.close)
    return tasks

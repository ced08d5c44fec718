"""Parallel fan-out against a real database and queue: a campaign's slices are claimed by several
workers, a crashed step resumes from the ledger, cancel stops it, and the campaign is sent once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as redis
from sqlalchemy import insert, select, update

from clarion import content
from clarion.campaign.repository import CampaignRepository
from clarion.config import Settings
from clarion.db import Database, utcnow
from clarion.delivery import fanout
from clarion.delivery.jobs import FANOUT
from clarion.delivery.repository import SliceRange, SliceRepository
from clarion.delivery.tasks import DeliveryTasks
from clarion.models import App, Campaign, Delivery, FanoutSlice, Subscriber
from clarion.queue import Job, MemoryQueue, Queue, Taken
from clarion.queue.redis_streams import RedisQueue
from clarion.subscriber.service import address_hash
from tests.conftest import make_settings
from tests.fakes.push_service import FakePushService
from tests.helpers import create_app, web_subscriber_row
from tests.support import REDIS_URL, require

# Small slices and pages, so that a test of a hundred recipients has several of each.
SLICE = 30
CHUNK = 10


@pytest.fixture
def settings(database_url: str) -> Settings:
    # lease_s 0.2: rows and slices waiting in the queue are left alone for 2 s (10 x lease_s).
    return make_settings(
        database_url, chunk_size=CHUNK, delivery_lease_s=0.5, delivery_renew_s=0.1, lease_s=0.2
    )


@pytest.fixture(autouse=True)
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "SLICE_RECIPIENTS", SLICE)


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


class _Spawns:
    """The part of the runner's Registry that start_due uses: spawned work, awaited by the test."""

    def __init__(self) -> None:
        self.work: list[Coroutine[Any, Any, object]] = []

    def spawn(self, work: Coroutine[Any, Any, object], name: str) -> None:
        self.work.append(work)

    async def run(self) -> None:
        work, self.work = self.work, []
        for item in work:
            await item


@dataclass
class Worker:
    """One worker process's delivery tasks, with its own name on what it holds, and its own consumer."""

    tasks: DeliveryTasks
    queue: Queue
    registry: _Spawns
    stepped: list[int] = field(default_factory=list)  # the slices it took a fan-out step of

    async def handle(self, taken: Taken) -> None:
        if taken.job.kind == FANOUT:
            self.stepped.append(taken.job.ids[0])
            await self.tasks.fan_out(taken.job)
        else:
            await self.tasks.deliver(taken.job)
        await self.queue.ack(taken)


def _worker(settings: Settings, db: Database, queue: Queue, name: str) -> Worker:
    registry = _Spawns()
    tasks = DeliveryTasks(settings, db, queue, registry)  # type: ignore[arg-type]
    tasks.owner = name
    return Worker(tasks, queue, registry)


@dataclass
class Audience:
    campaign_id: int
    subscriber_ids: list[int]
    sub_ids: list[str]  # the fake push service's names of the subscriptions


async def _audience(
    db: Database, settings: Settings, count: int, fake: FakePushService | None = None, targets: int = 0
) -> Audience:
    """`count` web subscribers of a new app and a campaign due now: to all of them, or to the
    first `targets` of them by token."""
    keys = await create_app(settings)
    now = utcnow()
    subs = (
        [fake.new_subscription(application_server_key=keys.vapid_public_key) for _ in range(count)]
        if fake
        else []
    )
    endpoints = [(s.endpoint, s.p256dh, s.auth) for s in subs] or [
        (f"http://127.0.0.1:9/push/{i}", "p256dh", "auth") for i in range(count)
    ]
    async with db.session() as session:
        app_id = (await session.execute(select(App.id).where(App.app_key == keys.app_key))).scalar_one()
        rows = [
            web_subscriber_row(
                app_id, f"reg-{index}-{address_hash(endpoint)[:24]}", endpoint, p256dh, auth, now
            )
            for index, (endpoint, p256dh, auth) in enumerate(endpoints)
        ]
        if rows:
            await session.execute(insert(Subscriber), rows)
        query = (
            select(Subscriber.id, Subscriber.reg_id)
            .where(Subscriber.app_id == app_id)
            .order_by(Subscriber.id)
        )
        subscribers = (await session.execute(query)).all()
        notification = content.Notification(campaign_id="", message="Hello", title="Hi")
        audience = {"kind": "tokens"} if targets else {"kind": "all"}
        campaign = Campaign(
            app_id=app_id,
            status="scheduled",
            send_at=now,
            ttl_s=3600,
            display_time_s=0,
            payload=content.encode(notification),
            audience=audience,
            created_at=now,
            fanout_done=False,
        )
        tokens = [reg_id for _, reg_id in subscribers[:targets]]
        campaign = await CampaignRepository(session).add(campaign, tokens)
        campaign_id = campaign.id
    return Audience(campaign_id, [int(sid) for sid, _ in subscribers], [s.sub_id for s in subs])


async def _slices(db: Database, campaign_id: int) -> list[FanoutSlice]:
    async with db.session() as session:
        query = select(FanoutSlice).where(FanoutSlice.campaign_id == campaign_id).order_by(FanoutSlice.id)
        return list((await session.execute(query)).scalars())


async def _ledger(db: Database, campaign_id: int) -> list[tuple[int, str]]:
    """(subscriber id, status) of every ledger row of the campaign, by subscriber."""
    async with db.session() as session:
        query = (
            select(Delivery.subscriber_id, Delivery.status)
            .where(Delivery.campaign_id == campaign_id)
            .order_by(Delivery.subscriber_id)
        )
        return [(int(s), str(status)) for s, status in (await session.execute(query)).all()]


async def _campaign(db: Database, campaign_id: int) -> Campaign:
    async with db.session() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        return campaign


async def _start(worker: Worker) -> None:
    """The scheduler's tick: claim the due campaign and cut it into slices (queued as fanout jobs)."""
    await worker.tasks.start_due()
    await worker.registry.run()


async def _drain(worker: Worker, queue: Queue) -> list[Job]:
    """Take every queued job without running it."""
    jobs = []
    while (taken := await queue.take(0.05)) is not None:
        jobs.append(taken.job)
        await queue.ack(taken)
    return jobs


@contextlib.asynccontextmanager
async def _queues(kind: str, count: int) -> AsyncIterator[list[Queue]]:
    """`count` workers' queues: one shared in-process queue, or Redis consumers of one stream."""
    if kind == "memory":
        shared = MemoryQueue()
        yield [shared] * count
        return
    require("redis")
    client = redis.from_url(REDIS_URL)
    await client.flushdb()
    queues: list[Queue] = [
        RedisQueue(REDIS_URL, consumer=f"worker-{index}", reclaim_after_s=60) for index in range(count)
    ]
    try:
        yield queues
    finally:
        for queue in queues:
            await queue.close()
        await client.flushdb()
        await client.aclose()


@pytest.mark.parametrize("queue_kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_two_workers_fan_out_one_campaign_and_it_is_sent_once_every_slice_is_done(
    db: Database, settings: Settings, fake: FakePushService, queue_kind: str
) -> None:
    audience = await _audience(db, settings, 4 * SLICE, fake)
    async with _queues(queue_kind, 2) as (queue_a, queue_b):
        workers = [_worker(settings, db, queue_a, "worker-a"), _worker(settings, db, queue_b, "worker-b")]
        for worker in workers:
            await worker.tasks.open()
        early_sends: list[str] = []

        async def consume(worker: Worker) -> None:
            swept_at = 0.0
            while (await _campaign(db, audience.campaign_id)).status != "sent":
                taken = await worker.queue.take(0.05)
                if taken is not None:
                    await worker.handle(taken)
                if (now := asyncio.get_running_loop().time()) - swept_at > 0.5:
                    # As each scheduler does: it catches two last jobs or slices ending together.
                    await worker.tasks.sweep()
                    swept_at = now
                campaign = await _campaign(db, audience.campaign_id)
                undone = [s.id for s in await _slices(db, audience.campaign_id) if not s.done]
                if campaign.status == "sent" and undone:
                    early_sends.append(f"sent with slices {undone} still to fan out")

        try:
            await _start(workers[0])
            slices = await _slices(db, audience.campaign_id)
            assert [(s.first_id, s.last_id) for s in slices] == [
                (audience.subscriber_ids[i], audience.subscriber_ids[i + SLICE - 1])
                for i in range(0, 4 * SLICE, SLICE)
            ]
            await asyncio.wait_for(asyncio.gather(*(consume(w) for w in workers)), 60)
        finally:
            for worker in workers:
                await worker.tasks.close()

    # Both workers fanned out slices of the one campaign: the fan-out is no longer one process's.
    a, b = (set(w.stepped) for w in workers)
    assert a, b
    assert b, a
    assert a | b == {s.id for s in slices}
    assert early_sends == []
    assert all(s.done and s.owner is None for s in await _slices(db, audience.campaign_id))
    ledger = await _ledger(db, audience.campaign_id)
    assert ledger == [(sid, "sent") for sid in audience.subscriber_ids]
    assert [len(fake.received_for(sub_id)) for sub_id in audience.sub_ids] == [1] * len(audience.sub_ids)
    campaign = await _campaign(db, audience.campaign_id)
    assert (campaign.status, campaign.fanout_done, campaign.finished_at is not None) == ("sent", True, True)


class _Crash(Exception):
    """The process died here."""


class _DyingQueue(MemoryQueue):
    """A queue whose process dies on its `puts`-th put (after the page it queues was committed)."""

    def __init__(self, puts: int) -> None:
        super().__init__()
        self.puts = puts

    async def put(self, job: Job) -> None:
        self.puts -= 1
        if self.puts == 0:
            raise _Crash
        await super().put(job)


@dataclass
class _CutShort:
    audience: Audience
    job: Job
    worker_a: Worker
    worker_b: Worker


@contextlib.asynccontextmanager
async def _step_cut_short(db: Database, settings: Settings) -> AsyncIterator[_CutShort]:
    """One slice of 25 (pages of 10, 10, 5) whose first step, in worker-a, died after its 2nd page's
    commit without handing the slice back; worker-a and worker-b are alive (one queue), and every
    recipient is in the ledger once, as pending, when the test is done with them."""
    audience = await _audience(db, settings, SLICE - 5)
    queue = MemoryQueue()
    worker_a, worker_b = _worker(settings, db, queue, "worker-a"), _worker(settings, db, queue, "worker-b")
    for worker in (worker_a, worker_b):
        await worker.tasks.open()
    try:
        await _start(worker_a)
        [job] = await _drain(worker_a, queue)
        dying = _worker(settings, db, _DyingQueue(puts=2), "worker-a")  # dies queueing its 2nd page
        await dying.tasks.open()
        with pytest.raises(_Crash):
            await dying.tasks.fan_out(job)
        await dying.tasks.close()
        assert len(await _ledger(db, audience.campaign_id)) == 2 * CHUNK
        [held] = await _slices(db, audience.campaign_id)
        assert (held.owner, held.done) == ("worker-a", False)
        await worker_b.tasks.fan_out(job)  # a duplicate in another process: the slice is held
        assert len(await _ledger(db, audience.campaign_id)) == 2 * CHUNK
        yield _CutShort(audience, job, worker_a, worker_b)
    finally:
        await worker_a.tasks.close()
        await worker_b.tasks.close()
    assert await _ledger(db, audience.campaign_id) == [(sid, "pending") for sid in audience.subscriber_ids]
    [slice_] = await _slices(db, audience.campaign_id)
    assert (slice_.done, slice_.owner) == (True, None)
    assert (await _campaign(db, audience.campaign_id)).fanout_done is True


async def test_a_step_that_crashed_mid_slice_resumes_from_the_ledger_without_loss_or_duplicate(
    db: Database, settings: Settings
) -> None:
    async with _step_cut_short(db, settings) as cut:
        await asyncio.sleep(settings.delivery_lease_s + 0.1)
        await cut.worker_b.tasks.sweep()  # the dead worker's lease lapsed: the slice is queued again
        fanout_jobs = [j for j in await _drain(cut.worker_b, cut.worker_b.queue) if j.kind == FANOUT]
        assert fanout_jobs == [cut.job]
        await cut.worker_b.tasks.fan_out(cut.job)


async def test_a_step_cut_short_is_taken_up_again_at_once_by_its_own_process(
    db: Database, settings: Settings
) -> None:
    """A step that ended without handing its slice back (the database away mid-step) leaves the slice
    held by its process: that process takes it up again at once, not a lease later; another process
    still waits for the lease (in _step_cut_short)."""
    async with _step_cut_short(db, settings) as cut:
        await cut.worker_a.tasks.fan_out(cut.job)  # well within the lease


async def test_a_process_runs_one_step_of_a_slice_at_a_time(db: Database, settings: Settings) -> None:
    """A duplicate job for a slice this process is stepping does nothing (it may take the slice back
    from its own process only because no step of it is running)."""
    audience = await _audience(db, settings, SLICE - 5)
    async with _one_slice_planned(db, settings) as (worker, job):
        worker.tasks._stepping.add(job.ids[0])  # a step of this slice in hand
        await worker.tasks.fan_out(job)
        assert await _ledger(db, audience.campaign_id) == []
        assert [s.owner for s in await _slices(db, audience.campaign_id)] == [None]


@contextlib.asynccontextmanager
async def _one_slice_planned(db: Database, settings: Settings) -> AsyncIterator[tuple[Worker, Job]]:
    """One worker that planned the due campaign into one slice: the worker and the slice's job."""
    worker = _worker(settings, db, MemoryQueue(), "worker-a")
    await worker.tasks.open()
    try:
        await _start(worker)
        [job] = await _drain(worker, worker.queue)
        yield worker, job
    finally:
        await worker.tasks.close()


class _CancellingQueue(MemoryQueue):
    """A queue through which the campaign is cancelled as its first page is queued."""

    def __init__(self, db: Database, campaign_id: int) -> None:
        super().__init__()
        self.db = db
        self.campaign_id = campaign_id

    async def put(self, job: Job) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(Campaign).where(Campaign.id == self.campaign_id).values(status="cancelled")
            )
        await super().put(job)


async def test_a_cancelled_campaign_stops_fanning_out_after_the_step_in_hand(
    db: Database, settings: Settings
) -> None:
    audience = await _audience(db, settings, 4 * SLICE)
    queue = MemoryQueue()
    worker = _worker(settings, db, queue, "worker-a")
    await worker.tasks.open()
    try:
        await _start(worker)
        jobs = await _drain(worker, queue)
        assert len(jobs) == 4
        cancelling = _worker(settings, db, _CancellingQueue(db, audience.campaign_id), "worker-b")
        await cancelling.tasks.open()
        await cancelling.tasks.fan_out(jobs[0])  # cancelled as its first page is queued
        await cancelling.tasks.close()
        added = len(await _ledger(db, audience.campaign_id))
        assert 0 < added <= fanout.STEP_PAGES * CHUNK
        for job in jobs:
            await worker.tasks.fan_out(job)  # no slice of a cancelled campaign is claimed
        await asyncio.sleep(settings.delivery_lease_s + 0.1)
        await worker.tasks.sweep()
        assert [j for j in await _drain(worker, queue) if j.kind == FANOUT] == []
    finally:
        await worker.tasks.close()
    assert len(await _ledger(db, audience.campaign_id)) == added
    campaign = await _campaign(db, audience.campaign_id)
    assert (campaign.status, campaign.fanout_done) == ("cancelled", False)


async def test_a_push_to_a_few_tokens_is_one_slice_of_exactly_them(db: Database, settings: Settings) -> None:
    audience = await _audience(db, settings, 4 * SLICE, targets=3)
    async with _one_slice_planned(db, settings) as (worker, job):
        await worker.tasks.fan_out(job)
        deliver_jobs = await _drain(worker, worker.queue)
    targeted = audience.subscriber_ids[:3]
    assert [(s.first_id, s.last_id, s.done) for s in await _slices(db, audience.campaign_id)] == [
        (targeted[0], targeted[-1], True)
    ]
    assert await _ledger(db, audience.campaign_id) == [(sid, "pending") for sid in targeted]
    assert [j.kind for j in deliver_jobs] == ["deliver"]
    assert (await _campaign(db, audience.campaign_id)).fanout_done is True


async def test_an_empty_audience_is_sent_at_once_without_slices(db: Database, settings: Settings) -> None:
    audience = await _audience(db, settings, 0)
    queue = MemoryQueue()
    worker = _worker(settings, db, queue, "worker-a")
    await worker.tasks.open()
    try:
        await _start(worker)
        assert await _drain(worker, queue) == []
    finally:
        await worker.tasks.close()
    assert await _slices(db, audience.campaign_id) == []
    campaign = await _campaign(db, audience.campaign_id)
    assert (campaign.status, campaign.fanout_done) == ("sent", True)


def test_an_audience_is_cut_into_even_ranges_up_to_the_most_slices() -> None:
    assert fanout.cut(0, 0, 0) == []
    assert fanout.cut(1, 7, 7) == [SliceRange(7, 7)]
    assert fanout.cut(70, 1, 70) == [SliceRange(1, 24), SliceRange(25, 48), SliceRange(49, 70)]
    many = fanout.cut(SLICE * 1000, 1, SLICE * 1000)
    assert len(many) == fanout.MAX_SLICES
    assert (many[0].first_id, many[-1].last_id) == (1, SLICE * 1000)
    assert all(a.last_id + 1 == b.first_id for a, b in itertools.pairwise(many))


async def test_the_sweep_marks_fanned_out_a_campaign_whose_last_slices_ended_together(
    db: Database, settings: Settings
) -> None:
    """Two workers finishing the last two slices in two transactions may each see the other's to do."""
    audience = await _audience(db, settings, 2 * SLICE)
    queue = MemoryQueue()
    worker = _worker(settings, db, queue, "worker-a")
    await worker.tasks.open()
    try:
        await _start(worker)
        await _drain(worker, queue)
        async with db.session() as session:
            await session.execute(update(FanoutSlice).values(done=True))  # as the race leaves them
        assert (await _campaign(db, audience.campaign_id)).fanout_done is False
        await worker.tasks.sweep()
    finally:
        await worker.tasks.close()
    campaign = await _campaign(db, audience.campaign_id)
    assert campaign.fanout_done is True
    async with db.session() as session:
        assert await SliceRepository(session).lapsed(utcnow(), utcnow(), 10) == []

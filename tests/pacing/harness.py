"""In-process workers over one database and one queue (in-process, or Redis Streams consumers), each
with its own delivery tasks, consumer and sweep: what `clarion worker` processes run, driven here."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis
from sqlalchemy import insert, select

from clarion import content
from clarion.campaign.repository import CampaignRepository
from clarion.config import Settings
from clarion.db import Database, utcnow
from clarion.delivery.jobs import FANOUT
from clarion.delivery.tasks import DeliveryTasks
from clarion.models import App, Campaign, Subscriber
from clarion.pacing.limiter import Clock
from clarion.queue import MemoryQueue, Queue, Taken
from clarion.queue.redis_streams import RedisQueue
from tests.fakes.push_service import FakePushService, Subscription
from tests.helpers import create_app, web_subscriber_row
from tests.support import REDIS_URL, require


class Spawns:
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
    tasks: DeliveryTasks
    queue: Queue
    registry: Spawns
    delivered_jobs: int = 0
    attempted: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def consume_one(self, taken: Taken) -> None:
        if taken.job.kind == FANOUT:
            await self.tasks.fan_out(taken.job)
        else:
            assert self.tasks.deliverer is not None
            done = await self.tasks.deliverer.run(int(taken.job.key), taken.job.ids, self.tasks.owner)
            self.delivered_jobs += 1 if done else 0
            self.attempted += done
        await self.queue.ack(taken)

    async def consume(self, sweep_every_s: float = 0.5) -> None:
        """Take jobs until stopped, sweeping as each scheduler does."""
        loop = asyncio.get_running_loop()
        swept_at = 0.0
        while not self.stop.is_set():
            taken = await self.queue.take(0.05)
            if taken is not None:
                await self.consume_one(taken)
            if (now := loop.time()) - swept_at > sweep_every_s:
                await self.tasks.sweep()
                swept_at = now


def worker(settings: Settings, db: Database, queue: Queue, name: str, clock: Clock | None = None) -> Worker:
    registry = Spawns()
    tasks = DeliveryTasks(settings, db, queue, registry)  # type: ignore[arg-type]
    tasks.owner = name
    if clock is not None:
        tasks.pace_clock = clock
    return Worker(tasks, queue, registry)


@contextlib.asynccontextmanager
async def queues(kind: str, count: int) -> AsyncIterator[list[Queue]]:
    """`count` workers' queues: one shared in-process queue, or Redis consumers of one stream (the
    test's Redis database emptied before and after, the limiter's keys with it)."""
    if kind == "memory":
        shared = MemoryQueue()
        yield [shared] * count
        return
    require("redis")
    client = redis.from_url(REDIS_URL)
    await client.flushdb()
    made: list[Queue] = [
        RedisQueue(REDIS_URL, consumer=f"worker-{index}", reclaim_after_s=60) for index in range(count)
    ]
    try:
        yield made
    finally:
        for queue in made:
            await queue.close()
        await client.flushdb()
        await client.aclose()


@dataclass
class Audience:
    app_id: int
    vapid_public_key: str
    subscribers: list[Subscription]
    reg_ids: list[str]


async def audience(db: Database, settings: Settings, fake: FakePushService, count: int) -> Audience:
    """`count` web subscribers of a new app, at the fake push service."""
    keys = await create_app(settings)
    app_id = await _app_id(db, keys.app_key)
    subs = [fake.new_subscription(application_server_key=keys.vapid_public_key) for _ in range(count)]
    return Audience(app_id, keys.vapid_public_key, subs, await add_subscribers(db, app_id, subs))


async def _app_id(db: Database, app_key: str) -> int:
    async with db.session() as session:
        return int((await session.execute(select(App.id).where(App.app_key == app_key))).scalar_one())


async def add_subscribers(db: Database, app_id: int, subs: list[Subscription]) -> list[str]:
    """The subscriptions as the app's web subscribers; their regIds."""
    now = utcnow()
    async with db.session() as session:
        rows = [
            web_subscriber_row(app_id, f"reg-{s.sub_id}", s.endpoint, s.p256dh, s.auth, now) for s in subs
        ]
        await session.execute(insert(Subscriber), rows)
    return [f"reg-{s.sub_id}" for s in subs]


async def campaign(
    db: Database,
    app_id: int,
    *,
    rate_per_minute: int | None = None,
    is_transactional: bool = False,
    tokens: list[str] | None = None,
) -> int:
    """A campaign due now, to every subscriber of the app or to the regIds in `tokens`."""
    now = utcnow()
    notification = content.Notification(campaign_id="", message="Hello", title="Hi")
    async with db.session() as session:
        made = Campaign(
            app_id=app_id,
            status="scheduled",
            send_at=now,
            ttl_s=3600,
            display_time_s=0,
            payload=content.encode(notification),
            audience={"kind": "tokens"} if tokens else {"kind": "all"},
            created_at=now,
            fanout_done=False,
            rate_per_minute=rate_per_minute,
            is_transactional=is_transactional,
        )
        return (await CampaignRepository(session).add(made, tokens or [])).id


async def start(one: Worker) -> None:
    """The scheduler's tick: claim what is due and cut it into slices (queued as fanout jobs)."""
    await one.tasks.start_due()
    await one.registry.run()


async def status(db: Database, campaign_id: int) -> str:
    async with db.session() as session:
        found = await session.get(Campaign, campaign_id)
        assert found is not None
        return found.status

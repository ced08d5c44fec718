"""Throttled campaigns: a campaign's rate holds across every worker (the limiter is shared), whether its
rows wait in their job for their turn or go back to the ledger until it comes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from clarion.composition import open_database
from clarion.db import Database
from clarion.delivery import pace
from clarion.models import Delivery
from tests.conftest import make_settings
from tests.fakes.push_service import FakePushService
from tests.pacing.clock import FastClock
from tests.pacing.harness import Worker, audience, campaign, queues, start, status, worker
from tests.support import REDIS_URL

# The fake's clock runs 5 times faster than the wall clock: 3,000 messages at 1,200 a minute take
# 150 s on it and 30 s of real time (200 a second per worker pair would not strain a loaded machine).
SPEED = 5.0


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


async def _run_until_sent(db: Database, workers: list[Worker], campaign_id: int, timeout_s: float) -> None:
    consumers = [asyncio.create_task(w.consume()) for w in workers]
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                if await status(db, campaign_id) == "sent":
                    break
                await asyncio.sleep(0.2)
    finally:
        for w in workers:
            w.stop.set()
        await asyncio.gather(*consumers)


async def _ledger(db: Database, campaign_id: int) -> list[tuple[str, int]]:
    async with db.session() as session:
        query = select(Delivery.status, Delivery.attempts).where(Delivery.campaign_id == campaign_id)
        return sorted((str(s), int(a)) for s, a in (await session.execute(query)).all())


@pytest.mark.postgres
@pytest.mark.redis
async def test_3000_messages_at_1200_a_minute_go_at_that_pace_across_two_workers(
    postgres_url: str, fake: FakePushService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every job waits for its turns itself here (on the fast clock); the test below covers rows
    # handed back to the ledger, which wait on the database's clock.
    monkeypatch.setattr(pace, "HORIZON_S", 1e9)
    settings = make_settings(
        postgres_url, queue_url=REDIS_URL, chunk_size=250, delivery_lease_s=4.0, delivery_renew_s=1.0
    )
    db = open_database(settings)
    clock = FastClock(SPEED)
    try:
        crowd = await audience(db, settings, fake, 3000)
        campaign_id = await campaign(db, crowd.app_id, rate_per_minute=1200)
        async with queues("redis", 2) as (queue_a, queue_b):
            a = worker(settings, db, queue_a, "worker-a", clock)
            b = worker(settings, db, queue_b, "worker-b", clock)
            for one in (a, b):
                await one.tasks.open()
            try:
                await start(a)
                await _run_until_sent(db, [a, b], campaign_id, timeout_s=100)
            finally:
                for one in (a, b):
                    await one.tasks.close()
        ledger = await _ledger(db, campaign_id)
    finally:
        await db.dispose()

    assert ledger == [("sent", 1)] * 3000
    assert sorted(r.sub_id for r in fake.received) == sorted(s.sub_id for s in crowd.subscribers)
    # The pace, from the times the push service received them, on the pacing clock.
    stamps = sorted(clock.virtual(r.at) for r in fake.received)
    minutes = (stamps[-1] - stamps[0]) / 60
    assert 1080 <= (len(stamps) - 1) / minutes <= 1320, (len(stamps), minutes)
    # Evenly: each half minute of it carries its share (600), within a quarter.
    per_half_minute = [0] * (int((stamps[-1] - stamps[0]) // 30) + 1)
    for stamp in stamps:
        per_half_minute[int((stamp - stamps[0]) // 30)] += 1
    assert all(450 <= n <= 750 for n in per_half_minute[:-1]), per_half_minute
    # Both workers sent part of it: the limiter is shared, not one process's.
    assert a.attempted > 0, (a.attempted, b.attempted)
    assert b.attempted > 0, (a.attempted, b.attempted)
    assert a.attempted + b.attempted == 3000


@pytest.mark.parametrize("queue_kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_rows_past_the_horizon_go_back_to_the_ledger_and_are_sent_at_their_turn(
    database_url: str, fake: FakePushService, queue_kind: str
) -> None:
    """60 at 600 a minute, real time: a job sends the first two seconds' worth and hands the rest
    back, due at their turns and not counted as attempts; the sweep queues them as they come."""
    settings = make_settings(
        database_url,
        queue_url=REDIS_URL if queue_kind == "redis" else "memory://",
        delivery_lease_s=2.0,
        delivery_renew_s=0.5,
        lease_s=0.2,
    )
    db = open_database(settings)
    try:
        crowd = await audience(db, settings, fake, 60)
        campaign_id = await campaign(db, crowd.app_id, rate_per_minute=600)
        async with queues(queue_kind, 2) as (queue_a, queue_b):
            a = worker(settings, db, queue_a, "worker-a")
            b = worker(settings, db, queue_b, "worker-b")
            for one in (a, b):
                await one.tasks.open()
            try:
                await start(a)
                await _run_until_sent(db, [a, b], campaign_id, timeout_s=40)
            finally:
                for one in (a, b):
                    await one.tasks.close()
        ledger = await _ledger(db, campaign_id)
    finally:
        await db.dispose()

    assert ledger == [("sent", 1)] * 60
    stamps = sorted(r.at for r in fake.received)
    assert len(stamps) == 60
    # 59 intervals of 0.1 s; the rows handed back go when a sweep (every 0.5 s here) finds them due.
    assert 5.0 <= stamps[-1] - stamps[0] <= 7.5, stamps[-1] - stamps[0]
    assert min(stamps[i + 10] - stamps[i] for i in range(50)) >= 0.4  # never ten at once

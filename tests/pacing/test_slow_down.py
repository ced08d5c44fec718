"""A push service's 429 with Retry-After holds the whole app's sends to that service, in every worker,
not only the one request; the app's other push services go on."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from clarion.composition import open_database
from clarion.db import Database
from clarion.models import Delivery
from tests.conftest import make_settings
from tests.fakes.push_service import FakePushService, Respond
from tests.pacing.harness import Worker, add_subscribers, audience, campaign, queues, start, status, worker
from tests.support import REDIS_URL

HOLD_S = 3.0


@pytest.fixture
def fakes() -> Iterator[tuple[FakePushService, FakePushService]]:
    with FakePushService() as busy, FakePushService() as other:
        yield busy, other


async def _statuses(db: Database, campaign_id: int) -> list[str]:
    async with db.session() as session:
        query = select(Delivery.status).where(Delivery.campaign_id == campaign_id)
        return sorted(str(s) for s in (await session.execute(query)).scalars())


async def _deliver_one_job(one: Worker) -> None:
    """Worker `one` plans the due campaign, takes its fan-out step, then its one deliver job."""
    await start(one)
    for _ in range(2):
        taken = await one.queue.take(5)
        assert taken is not None
        await one.consume_one(taken)


def _arrivals(fake: FakePushService, campaign_id: int) -> list[float]:
    return [r.at for r in fake.received if json.loads(r.payload)["campaign_id"] == str(campaign_id)]


@pytest.mark.parametrize("queue_kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_429_holds_the_apps_sends_to_that_push_service_in_every_worker(
    database_url: str, fakes: tuple[FakePushService, FakePushService], queue_kind: str
) -> None:
    busy, other = fakes
    settings = make_settings(
        database_url,
        queue_url=REDIS_URL if queue_kind == "redis" else "memory://",
        delivery_lease_s=2.0,
        delivery_renew_s=0.5,
        lease_s=0.2,
    )
    db = open_database(settings)
    try:
        crowd = await audience(db, settings, busy, 4)  # four subscribers at the busy push service
        key = crowd.vapid_public_key
        elsewhere = [other.new_subscription(application_server_key=key) for _ in range(2)]
        await add_subscribers(db, crowd.app_id, elsewhere)
        busy.script(crowd.subscribers[0].sub_id, [Respond(429, retry_after=str(int(HOLD_S)))])
        async with queues(queue_kind, 2) as (queue_a, queue_b):
            a, b = worker(settings, db, queue_a, "worker-a"), worker(settings, db, queue_b, "worker-b")
            for one in (a, b):
                await one.tasks.open()
            try:
                # Worker a sends a campaign to one subscriber: the busy service answers 429.
                first = await campaign(db, crowd.app_id, tokens=crowd.reg_ids[:1])
                await _deliver_one_job(a)
                answered_at = time.time()
                # Worker b, which never saw that answer, sends a campaign to all six.
                second = await campaign(db, crowd.app_id)
                await _deliver_one_job(b)
                consumers = [asyncio.create_task(w.consume(0.2)) for w in (a, b)]
                try:
                    async with asyncio.timeout(30):
                        while True:
                            if {await status(db, first), await status(db, second)} == {"sent"}:
                                break
                            await asyncio.sleep(0.1)
                finally:
                    for one in (a, b):
                        one.stop.set()
                    await asyncio.gather(*consumers)
            finally:
                for one in (a, b):
                    await one.tasks.close()
        ledgers = (await _statuses(db, first), await _statuses(db, second))
    finally:
        await db.dispose()

    assert ledgers == (["sent"], ["sent"] * 6)
    # Nothing of the app went to the busy push service before its Retry-After had passed...
    held = _arrivals(busy, first) + _arrivals(busy, second)
    assert len(held) == 5
    assert min(held) >= answered_at + HOLD_S - 0.05, [t - answered_at for t in held]
    # ...while the app's other push service was sent to at once.
    assert len(_arrivals(other, second)) == 2
    assert max(_arrivals(other, second)) < answered_at + HOLD_S - 0.5, [
        t - answered_at for t in _arrivals(other, second)
    ]

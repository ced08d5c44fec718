"""The Deliverer on its own against a real ledger: outcomes recorded while a job runs, leases renewed
while it lives and lapsing when it dies, retries until the TTL, and failures logged without a flood."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from clarion import content
from clarion.config import Settings
from clarion.db import Database, utcnow
from clarion.delivery.context import ContextCache
from clarion.delivery.jobs import deliver_job
from clarion.delivery.recorder import Job, Recorder
from clarion.delivery.repository import LedgerRepository
from clarion.delivery.service import UNSUBSCRIBED, Deliverer
from clarion.delivery.tasks import DeliveryTasks
from clarion.models import App, Campaign, Delivery, Subscriber
from clarion.provider.outcome import Delivered
from clarion.provider.registry import build_providers
from clarion.queue import MemoryQueue
from clarion.subscriber.service import address_hash
from tests.conftest import make_settings
from tests.fakes.push_service import FakePushService, Hang, Respond
from tests.helpers import AppKeys, create_app, web_subscriber_row

OWNER = "test-worker"


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Hanging requests must outlast the assertions made while they hang.
    return make_settings(database_url, request_timeout_s=30.0, delivery_lease_s=1.0, delivery_renew_s=0.2)


@dataclass
class Ledger:
    db: Database
    campaign_id: int
    delivery_ids: list[int]

    async def rows(self) -> list[Any]:
        async with self.db.session() as session:
            query = select(Delivery).where(Delivery.campaign_id == self.campaign_id).order_by(Delivery.id)
            return list((await session.execute(query)).scalars())

    async def count(self, status: str) -> int:
        return sum(1 for row in await self.rows() if row.status == status)


async def _ledger(
    db: Database, settings: Settings, endpoints: list[tuple[str, str, str]], keys: AppKeys | None = None
) -> Ledger:
    """A started campaign (TTL 1 h) to one web subscriber per (endpoint, p256dh, auth), in the ledger."""
    keys = keys or await create_app(settings)
    now = utcnow()
    async with db.session() as session:
        app_id = (await session.execute(select(App.id).where(App.app_key == keys.app_key))).scalar_one()
        subscribers = [
            web_subscriber_row(app_id, f"reg-{address_hash(endpoint)[:32]}", endpoint, p256dh, auth, now)
            for endpoint, p256dh, auth in endpoints
        ]
        await session.execute(insert(Subscriber), subscribers)
        notification = content.Notification(campaign_id="", message="Hello", title="Hi")
        campaign = Campaign(
            app_id=app_id,
            status="sending",
            send_at=now,
            started_at=now,
            ttl_s=3600,
            display_time_s=0,
            payload=content.encode(notification),
            audience={"kind": "all"},
            created_at=now,
            fanout_done=True,
        )
        session.add(campaign)
        await session.flush()
        ids = (
            await session.execute(
                select(Subscriber.id).where(Subscriber.app_id == app_id).order_by(Subscriber.id)
            )
        ).scalars()
        await LedgerRepository(session).add_rows(campaign.id, [(sid, None) for sid in ids], now, now)
        campaign_id = campaign.id
    ledger = Ledger(db, campaign_id, [])
    ledger.delivery_ids = [row.id for row in await ledger.rows()]
    return ledger


def _deliverer(settings: Settings, db: Database, concurrency: int = 16) -> Deliverer:
    return Deliverer(
        db,
        build_providers(settings),
        lease_s=settings.delivery_lease_s,
        renew_s=settings.delivery_renew_s,
        concurrency=concurrency,
        retry_base_s=settings.retry_base_s,
        retry_max_s=settings.retry_max_s,
    )


@pytest.fixture
async def deliverer(settings: Settings, db: Database) -> AsyncIterator[Deliverer]:
    deliverer = _deliverer(settings, db)
    yield deliverer
    await deliverer.close()


async def _eventually(condition: Any, timeout_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _web_ledger(
    db: Database, settings: Settings, fake: FakePushService, count: int
) -> tuple[Ledger, list[str]]:
    keys = await create_app(settings)
    subs = [fake.new_subscription(application_server_key=keys.vapid_public_key) for _ in range(count)]
    ledger = await _ledger(db, settings, [(s.endpoint, s.p256dh, s.auth) for s in subs], keys)
    return ledger, [s.sub_id for s in subs]


async def test_answered_sends_are_recorded_while_the_job_still_runs(
    db: Database, settings: Settings, fake: FakePushService, deliverer: Deliverer
) -> None:
    """A crash re-sends what was sent but not recorded: here, only the requests still in flight."""
    ledger, sub_ids = await _web_ledger(db, settings, fake, 300)
    hanging = sub_ids[-16:]  # the last 16 fill the 16 lanes, the job cannot end
    for sub_id in hanging:
        fake.script(sub_id, [Hang()])
    job = asyncio.create_task(deliverer.run(ledger.campaign_id, ledger.delivery_ids, OWNER))
    await asyncio.to_thread(fake.wait_for, 284, 30)

    async def all_answered_recorded() -> bool:
        return await ledger.count("sent") == 284

    await _eventually(all_answered_recorded, 5, "the answered sends in the ledger")
    assert not job.done()
    # What a crash now would re-send: the rows still pending are exactly the 16 in flight.
    pending = [row.id for row in await ledger.rows() if row.status == "pending"]
    assert pending == ledger.delivery_ids[-16:]
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job


async def test_nothing_more_is_sent_while_the_answered_sends_cannot_be_recorded(
    db: Database, settings: Settings, fake: FakePushService, deliverer: Deliverer
) -> None:
    """A lane is free only once its outcome is recorded: sent-but-unrecorded never exceeds the lanes."""
    ledger, _ = await _web_ledger(db, settings, fake, 300)
    job = asyncio.create_task(deliverer.run(ledger.campaign_id, ledger.delivery_ids, OWNER))
    await asyncio.to_thread(fake.wait_for, 1, 30)
    try:
        async with db.session() as session:
            # The ledger's rows locked by another writer: every write of the recorder waits.
            await session.execute(
                update(Delivery)
                .where(Delivery.campaign_id == ledger.campaign_id)
                .values(updated_at=Delivery.updated_at)
            )
            await asyncio.sleep(1.0)
            sent = len(fake.received)
            recorded = await ledger.count("sent")
        assert recorded < sent < 300
        assert sent - recorded <= 16  # the deliverer's 16 lanes
        assert await job == 300
    finally:
        job.cancel()  # done by now, unless an assertion failed
    assert await ledger.count("sent") == len(fake.received) == 300


@pytest.mark.parametrize("turns", range(8))
async def test_the_recorder_stops_and_records_whenever_its_stop_meets_a_wake_up(
    db: Database, settings: Settings, fake: FakePushService, turns: int
) -> None:
    """A stop asked for `turns` turns of the loop after an outcome woke the writer still ends, and
    the outcome is in the ledger. Cancelling the writer instead hung for good on Python 3.11 when the
    cancel met the wake-up (asyncio.wait_for swallowed it: the deliverer tests' teardown, `clarion
    serve` stopping after a campaign), and lost the batch when the cancel met its write."""
    ledger, _ = await _web_ledger(db, settings, fake, 1)
    recorder = Recorder(db, retry_base_s=1.0, retry_max_s=1.0, lease_s=60.0, renew_s=60.0)
    now = utcnow()
    async with db.session() as session:
        claimed = await LedgerRepository(session).claim(
            ledger.delivery_ids, OWNER, now, now + timedelta(seconds=60)
        )
        context = await ContextCache().get(session, ledger.campaign_id)
    assert context is not None
    job = Job(recorder, context, claimed, OWNER)
    recorder.hold(job)
    recorded = job.done(0, Delivered(201))  # the job's last outcome: the writer is woken now
    for _ in range(turns):
        await asyncio.sleep(0)
    # Bounded by asyncio.wait, not wait_for: wait_for's own cancel on timeout could reach the writer
    # and end it, and the lost stop would pass unseen.
    stopping = asyncio.ensure_future(recorder.close())
    finished, _ = await asyncio.wait([stopping], timeout=10)
    assert finished, "the recorder never stopped: its stop was lost"
    await stopping
    assert recorded.done()
    assert job.recorded.done()
    assert [row.status for row in await ledger.rows()] == ["sent"]


async def test_a_subscriber_gone_since_the_fan_out_is_sent_nothing(
    db: Database, settings: Settings, fake: FakePushService, deliverer: Deliverer
) -> None:
    ledger, sub_ids = await _web_ledger(db, settings, fake, 3)
    async with db.session() as session:
        row = await session.get(Delivery, ledger.delivery_ids[1])
        assert row is not None
        await session.execute(
            update(Subscriber).where(Subscriber.id == row.subscriber_id).values(active=False)
        )
    await deliverer.run(ledger.campaign_id, ledger.delivery_ids, OWNER)
    assert [(row.status, row.last_error) for row in await ledger.rows()] == [
        ("sent", None),
        ("gone", UNSUBSCRIBED),
        ("sent", None),
    ]
    assert [len(fake.received_for(sub_id)) for sub_id in sub_ids] == [1, 0, 1]


async def test_a_slow_jobs_rows_keep_their_lease(
    db: Database, settings: Settings, fake: FakePushService, deliverer: Deliverer
) -> None:
    ledger, sub_ids = await _web_ledger(db, settings, fake, 8)
    for sub_id in sub_ids:
        fake.script(sub_id, [Hang()])
    job = asyncio.create_task(deliverer.run(ledger.campaign_id, ledger.delivery_ids, OWNER))

    async def all_in_flight() -> bool:
        return sum(1 for request in fake.requests if request.method == "POST") == 8

    await _eventually(all_in_flight, 10, "the 8 requests")
    await asyncio.sleep(3 * settings.delivery_lease_s)  # three leases: only renewals keep the rows
    now = utcnow()
    rows = await ledger.rows()
    assert {row.owner for row in rows} == {OWNER}
    assert all(row.lease_until.replace(tzinfo=now.tzinfo) > now for row in rows)
    async with db.session() as session:
        assert await LedgerRepository(session).lapsed(now, now + timedelta(seconds=60), 100) == []
    assert not job.done()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job


class _NoRegistry:
    def spawn(self, work: Any, name: str) -> None:
        raise AssertionError("the sweep spawns nothing")


async def test_a_dead_owners_rows_are_queued_again_one_lease_later(
    db: Database, settings: Settings, fake: FakePushService
) -> None:
    ledger, _ = await _web_ledger(db, settings, fake, 5)
    claimed_at = utcnow()
    async with db.session() as session:
        lease_until = claimed_at + timedelta(seconds=settings.delivery_lease_s)
        await LedgerRepository(session).claim(ledger.delivery_ids, "dead-worker", claimed_at, lease_until)
    queue = MemoryQueue()
    tasks = DeliveryTasks(settings, db, queue, _NoRegistry())  # type: ignore[arg-type]
    await tasks.sweep()
    assert await queue.take(0.01) is None  # held: the lease still runs
    await asyncio.sleep(settings.delivery_lease_s + 0.05)
    await tasks.sweep()
    taken = await queue.take(0.01)
    assert taken is not None
    assert list(taken.job.ids) == ledger.delivery_ids
    assert utcnow() - claimed_at < timedelta(seconds=settings.delivery_lease_s + 1)


async def test_a_restarted_in_process_engine_takes_back_the_dead_ones_rows_at_once(
    db: Database, settings: Settings, fake: FakePushService
) -> None:
    """With the in-process queue one process owns the engine: at its start nobody else can be sending
    (the previous owner is dead), so the rows it held are queued again now, not a lease later; a row
    waiting for its retry keeps its time (queued now, the claim would skip it and the queue's grace
    pass before it was looked at again)."""
    ledger, _ = await _web_ledger(db, settings, fake, 5)
    now = utcnow()
    async with db.session() as session:
        repo = LedgerRepository(session)
        await repo.claim(ledger.delivery_ids[:4], "killed-serve", now, now + timedelta(hours=1))
        await repo.retry_later([(ledger.delivery_ids[4], now + timedelta(hours=1), "500")], now)
    queue = MemoryQueue()
    tasks = DeliveryTasks(settings, db, queue, _NoRegistry())  # type: ignore[arg-type]
    await tasks.sweep()
    assert await queue.take(0.01) is None  # an hour's lease and an hour's retry wait
    await tasks.reset_leases()  # what the runner's start does with a queue that died with its process
    await tasks.sweep()
    taken = await queue.take(0.01)
    assert taken is not None
    assert list(taken.job.ids) == ledger.delivery_ids[:4]
    assert await queue.take(0.01) is None
    [*_, waiting] = await ledger.rows()
    assert (waiting.owner, waiting.lease_until) == (None, waiting.next_attempt_at)


async def test_a_job_taken_twice_claims_nothing_its_first_run_holds(
    db: Database, settings: Settings, fake: FakePushService
) -> None:
    """A Redis entry reclaimed from a live consumer (or rows swept while their job ran) runs the job again
    in a process that may hold its rows: the claim returns only what it took."""
    ledger, _ = await _web_ledger(db, settings, fake, 5)
    lease_until = utcnow() + timedelta(seconds=settings.delivery_lease_s)
    async with db.session() as session:
        first = await LedgerRepository(session).claim(ledger.delivery_ids, OWNER, utcnow(), lease_until)
    async with db.session() as session:
        again = await LedgerRepository(session).claim(ledger.delivery_ids, OWNER, utcnow(), lease_until)
    assert [row.delivery_id for row in first] == ledger.delivery_ids
    assert again == []


async def test_the_sweep_leaves_the_rows_of_its_own_live_jobs_even_when_their_lease_lapsed(
    db: Database, settings: Settings, fake: FakePushService
) -> None:
    """A renewal that came late (the database away) must not let the sweep queue rows being sent."""
    ledger, sub_ids = await _web_ledger(db, settings, fake, 4)
    for sub_id in sub_ids:
        fake.script(sub_id, [Hang()])
    queue = MemoryQueue()
    tasks = DeliveryTasks(settings, db, queue, _NoRegistry())  # type: ignore[arg-type]
    await tasks.open()
    job = asyncio.create_task(tasks.deliver(deliver_job(ledger.campaign_id, ledger.delivery_ids)))
    try:

        async def all_in_flight() -> bool:
            return sum(1 for request in fake.requests if request.method == "POST") == 4

        await _eventually(all_in_flight, 10, "the 4 requests")
        async with db.session() as session:  # what an outage longer than the lease leaves
            await session.execute(update(Delivery).values(lease_until=utcnow() - timedelta(seconds=1)))
        await tasks.sweep()
        assert await queue.take(0.01) is None
    finally:
        job.cancel()
        await tasks.close()
    await tasks.sweep()  # the job is gone: its rows are queued again
    taken = await queue.take(0.01)
    assert taken is not None
    assert list(taken.job.ids) == ledger.delivery_ids


async def test_transient_failures_are_retried_past_ten_attempts_while_the_ttl_runs(
    db: Database, settings: Settings, fake: FakePushService, deliverer: Deliverer
) -> None:
    ledger, [sub_id] = await _web_ledger(db, settings, fake, 1)
    fake.script(sub_id, [Respond(500)] * 8 + [Respond(429, retry_after="0")] * 6 + [Respond(201)])

    async def delivered() -> bool:
        await deliverer.run(ledger.campaign_id, ledger.delivery_ids, OWNER)
        return await ledger.count("pending") == 0

    await _eventually(delivered, 30, "the 15th attempt")
    [row] = await ledger.rows()
    assert (row.status, row.attempts) == ("sent", 15)
    assert len(fake.received_for(sub_id)) == 1


async def test_a_timed_out_attempt_has_spent_its_back_off_waiting(
    db: Database, database_url: str, fake: FakePushService
) -> None:
    """A push service that held the request until the timeout was given that long already: the retry
    is due when the timeout ends, not a whole back-off later (chaos suite, push-hang)."""
    # Attempt 1's back-off is drawn from [0.5 s, 1 s]: all of it passes while the request hangs.
    settings = make_settings(database_url, request_timeout_s=1.0, retry_base_s=1.0)
    deliverer = _deliverer(settings, db)
    try:
        ledger, [sub_id] = await _web_ledger(db, settings, fake, 1)
        fake.script(sub_id, [Hang()])
        await deliverer.run(ledger.campaign_id, ledger.delivery_ids, OWNER)
    finally:
        await deliverer.close()
    [row] = await ledger.rows()
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "TimeoutError")
    assert row.next_attempt_at == row.updated_at  # due at the moment the timeout was recorded


async def test_a_storm_of_410s_logs_three_lines(
    db: Database,
    settings: Settings,
    fake: FakePushService,
    deliverer: Deliverer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger, sub_ids = await _web_ledger(db, settings, fake, 200)
    for sub_id in sub_ids:
        fake.script(sub_id, [Respond(410)])
    with caplog.at_level(logging.DEBUG, logger="clarion.delivery"):
        assert await deliverer.run(ledger.campaign_id, ledger.delivery_ids, OWNER) == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "clarion.delivery"]
    assert await ledger.count("gone") == 200
    assert len(lines) == 3, lines
    first, summary, finished = lines
    assert first.startswith(f"campaign {ledger.campaign_id}: first `gone` from {fake.origin}: HTTP 410")
    assert summary == f"campaign {ledger.campaign_id}: job of 200 recipients recorded: 200 gone"
    assert finished == f"campaign {ledger.campaign_id} finished: 200 gone"
    assert not any(sub_id in line for line in lines for sub_id in sub_ids)


async def test_a_refused_certificate_is_logged_once_per_origin_and_campaign(
    db: Database,
    settings: Settings,
    fake: FakePushService,
    deliverer: Deliverer,
    untrusted_tls: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    subs = [fake.new_subscription() for _ in range(6)]
    endpoints = [(f"{untrusted_tls}/push/{s.sub_id}", s.p256dh, s.auth) for s in subs]
    first = await _ledger(db, settings, endpoints[:3])
    second = await _ledger(db, settings, endpoints[3:])
    with caplog.at_level(logging.INFO, logger="clarion.delivery"):
        await deliverer.run(first.campaign_id, first.delivery_ids, OWNER)
        await asyncio.sleep(2 * settings.retry_max_s)  # due again: a second attempt, not logged again
        await deliverer.run(first.campaign_id, first.delivery_ids, OWNER)
        await deliverer.run(second.campaign_id, second.delivery_ids, OWNER)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "clarion.delivery"]
    assert [r.getMessage().split(":")[0] for r in warnings] == [
        f"campaign {first.campaign_id}",
        f"campaign {second.campaign_id}",
    ]
    for record in warnings:
        message = record.getMessage()
        assert f"the TLS connection to {untrusted_tls} was refused" in message
        assert "certificate" in message  # the reason: UnknownIssuer
        assert "CLARION_CA_FILE" in message
        assert "/push/" not in message  # the origin only: an endpoint URL is a capability
    assert {row.attempts for row in await first.rows()} == {2}
    assert await first.count("pending") == 3  # retried until the TTL, not given up

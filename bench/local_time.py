"""A local-time campaign against an immediate one: CPU per message (docs/scheduling.md).

    python -m bench.local_time [--n 100000] [--rounds 1] [--best-time]

One SQLite database, one app of N web subscribers spread over 24 time zones (Etc/GMT+12 … Etc/GMT-11,
one an hour), and Clarion's own engine in this process (DeliveryTasks: scheduler, fan-out, sweep,
deliverer) with CLARION_DELIVERY=sink: every message is built and encrypted as for real, then recorded
as delivered without the network. Each round sends the same audience twice, interleaved:

- immediate: one campaign to everyone, now;
- local time: "09:00 in each subscriber's zone", started with the scheduler's clock two days back,
  which is then moved to each zone's 09:00 in turn (24 releases, each queued by the sweep).

With --best-time the second campaign is a best-time one (local_time 09:00 as its fallback) and half
the subscribers have two clicks (on two earlier campaigns) in the 30 days before it, at an hour that
varies by subscriber: its fan-out also ranks each page's clicks by local hour.

Each side is swept as often (RELEASES times, then until it is sent): the immediate campaign at the real
time, the local-time one at each release. Both figures are the process's CPU seconds (every thread)
from the campaign's start to its last recorded outcome, divided by N; the line prints them side by
side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from bench import storage
from bench.delivery import cli
from clarion import content
from clarion.campaign.repository import CampaignRepository
from clarion.composition import open_database
from clarion.config import Settings
from clarion.db import Database, utcnow
from clarion.delivery.jobs import FANOUT
from clarion.delivery.tasks import DeliveryTasks
from clarion.models import App, Campaign, Event, Subscriber
from clarion.queue import MemoryQueue
from clarion.secrets_box import new_key
from clarion.subscriber.service import address_hash

ZONES = [f"Etc/GMT{offset:+d}" if offset else "Etc/GMT" for offset in range(12, -12, -1)]
CONSUMERS = 4  # jobs in hand at once, as CLARION_WORKER_JOBS's default
RELEASES = 25  # the local-time campaign's sweeps: at each of the 24 hours from its start, and one past


class Clock:
    def __init__(self) -> None:
        self.now: datetime | None = None  # None: the real time

    def __call__(self) -> datetime:
        return self.now or utcnow()


class _Spawns:
    def __init__(self) -> None:
        self.work: list[Any] = []

    def spawn(self, work: Any, name: str) -> None:
        self.work.append(work)


async def _subscribers(db: Database, app_id: int, n: int) -> None:
    subs = storage.make_subscriptions(n, "https://push.example.net")
    now = utcnow()
    for start in range(0, n, storage.INSERT_BATCH):
        rows = [
            {
                "app_id": app_id,
                "reg_id": f"bench-{start + offset}",
                "platform": "web",
                "address": sub.endpoint,
                "address_hash": address_hash(sub.endpoint),
                "p256dh": sub.p256dh,
                "auth": sub.auth,
                "active": True,
                "created_at": now,
                "updated_at": now,
                "timezone": ZONES[(start + offset) % len(ZONES)],
            }
            for offset, sub in enumerate(subs[start : start + storage.INSERT_BATCH])
        ]
        async with db.session() as session:
            await session.execute(insert(Subscriber), rows)


async def _clicks(db: Database, app_id: int, start: datetime) -> None:
    """Half the subscribers clicked twice (two earlier campaigns), five and six days before `start`, at an
    hour that varies by subscriber."""
    earlier = [await _campaign(db, app_id, start - timedelta(days=7), None, status="sent") for _ in range(2)]
    async with db.session() as session:
        ids = list(
            (await session.execute(select(Subscriber.id).where(Subscriber.app_id == app_id))).scalars()
        )
    rows = [
        {
            "campaign_id": campaign_id,
            "subscriber_id": subscriber_id,
            "type": "clicked",
            "created_at": start - timedelta(days=5 + day, hours=subscriber_id % 24),
        }
        for subscriber_id in ids[::2]
        for day, campaign_id in enumerate(earlier)
    ]
    for first in range(0, len(rows), storage.INSERT_BATCH):
        async with db.session() as session:
            await session.execute(insert(Event), rows[first : first + storage.INSERT_BATCH])


async def _campaign(
    db: Database,
    app_id: int,
    send_at: datetime,
    local_time: str | None,
    *,
    best_time: bool = False,
    status: str = "scheduled",
) -> int:
    async with db.session() as session:
        campaign = Campaign(
            app_id=app_id,
            status=status,
            send_at=send_at,
            # Long enough that the zones released two days back are still within it.
            ttl_s=2_419_200,
            display_time_s=0,
            payload=content.encode(content.Notification(campaign_id="", message="Good morning", title="Hi")),
            audience={"kind": "all"},
            created_at=send_at,
            fanout_done=status != "scheduled",
            local_time=local_time,
            past_zones="tomorrow" if local_time else None,
            best_time=best_time,
        )
        return (await CampaignRepository(session).add(campaign, [])).id


async def _drain(tasks: DeliveryTasks, queue: MemoryQueue) -> None:
    """Run queued jobs (fan-out steps and deliveries) with CONSUMERS at once until the queue is empty."""

    async def consume() -> None:
        while (taken := await queue.take(0.05)) is not None:
            if taken.job.kind == FANOUT:
                await tasks.fan_out(taken.job)
            else:
                await tasks.deliver(taken.job)
            await queue.ack(taken)

    await asyncio.gather(*(consume() for _ in range(CONSUMERS)))


async def _status(db: Database, campaign_id: int) -> str:
    async with db.session() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        return campaign.status


async def _send(
    db: Database,
    tasks: DeliveryTasks,
    queue: MemoryQueue,
    spawns: _Spawns,
    campaign_id: int,
    clock: Clock,
    instants: list[datetime | None],
) -> float:
    """CPU seconds from the campaign's start to its end: started at the clock's time, then swept at
    each instant (a zone's release; None: the real time), then until it is sent."""
    started = time.process_time()
    await tasks.start_due()
    work, spawns.work = spawns.work, []
    for item in work:
        await item
    await _drain(tasks, queue)
    for instant in instants:
        clock.now = instant
        await tasks.sweep()
        await _drain(tasks, queue)
    clock.now = None
    while await _status(db, campaign_id) != "sent":
        await tasks.sweep()
        await _drain(tasks, queue)
    return time.process_time() - started


async def _round(
    db: Database,
    tasks: DeliveryTasks,
    queue: MemoryQueue,
    spawns: _Spawns,
    app_id: int,
    clock: Clock,
    best_time: bool,
) -> tuple[float, float]:
    clock.now = None
    immediate = await _campaign(db, app_id, utcnow(), None)
    # As many sweeps as the local-time campaign's releases: a server sweeps every second whatever it
    # sends, so an idle sweep's cost is the server's, not a local-time campaign's, and each side pays
    # for the same number of them.
    immediate_cpu = await _send(db, tasks, queue, spawns, immediate, clock, [None] * RELEASES)
    start = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    if best_time:
        await _clicks(db, app_id, start)
    local = await _campaign(db, app_id, start, "09:00", best_time=best_time)
    clock.now = start
    # Each zone's 09:00 within the 24 hours from the start (one an hour), a second past.
    instants: list[datetime | None] = [start + timedelta(hours=h, seconds=1) for h in range(RELEASES)]
    local_cpu = await _send(db, tasks, queue, spawns, local, clock, instants)
    return immediate_cpu, local_cpu


async def _bench(
    database_url: str, secret_key: str, app_key: str, n: int, rounds: int, best_time: bool
) -> list[tuple[float, float]]:
    settings = Settings(database_url=database_url, secret_key=secret_key, delivery="sink")
    db = open_database(settings)
    try:
        async with db.session() as session:
            app_id = (await session.execute(select(App.id).where(App.app_key == app_key))).scalar_one()
        await _subscribers(db, app_id, n)
        clock = Clock()
        queue = MemoryQueue()
        spawns = _Spawns()
        tasks = DeliveryTasks(settings, db, queue, spawns, clock=clock)  # type: ignore[arg-type]
        await tasks.open()
        try:
            figures = []
            for index in range(1, rounds + 1):
                figures.append(await _round(db, tasks, queue, spawns, app_id, clock, best_time))
                _print(index, n, *figures[-1], "best time" if best_time else "local time")
            return figures
        finally:
            await tasks.close()
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="subscribers, over 24 zones")
    parser.add_argument("--rounds", type=int, default=1, help="immediate + local-time pairs, interleaved")
    parser.add_argument("--best-time", action="store_true", help="the second campaign is best time")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        database_url = f"sqlite:///{Path(work) / 'clarion.db'}"
        secret_key = new_key()
        env = {
            "CLARION_DATABASE_URL": database_url,
            "CLARION_SECRET_KEY": secret_key,
            "CLARION_DATA_DIR": work,
        }
        cli(env, "db", "upgrade")
        app = json.loads(cli(env, "apps", "create", "local time", "--plan", "unlimited", "--json"))
        figures = asyncio.run(
            _bench(database_url, secret_key, app["app_key"], args.n, args.rounds, args.best_time)
        )
    immediate = sum(i for i, _ in figures) / args.n / len(figures)
    local = sum(lt for _, lt in figures) / args.n / len(figures)
    kind = "best time" if args.best_time else "local time"
    print(f"mean: immediate {immediate * 1e6:.0f} µs, {kind} {local * 1e6:.0f} µs per message")
    return 0


def _print(index: int, n: int, immediate: float, local: float, kind: str) -> None:
    print(
        f"round {index}: N={n} over {len(ZONES)} zones, CPU per message: "
        f"immediate {immediate / n * 1e6:.0f} µs, {kind} {local / n * 1e6:.0f} µs "
        f"(x{local / immediate:.2f}; {immediate:.1f} and {local:.1f} CPU-s)",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())

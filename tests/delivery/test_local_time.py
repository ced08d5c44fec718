"""Local-time campaigns and quiet hours through the real fan-out, sweep and queue, on a real database,
with the scheduler's clock injected: a day of releases runs in a second.

The fan-out adds every recipient to the ledger when the campaign starts; a recipient whose local time
is still to come waits there (no owner, leased until its release) and the sweep queues it then.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from clarion import content
from clarion.campaign.repository import CampaignRepository
from clarion.config import Settings
from clarion.db import Database
from clarion.delivery.jobs import DELIVER, FANOUT
from clarion.delivery.tasks import DeliveryTasks
from clarion.models import App, Campaign, Delivery, Subscriber
from clarion.queue import MemoryQueue
from tests.helpers import create_app, update_app, web_subscriber_row

# Both sides of the date line, a zone that changes to summer time on 2026-03-08 at 02:00 local, and
# subscribers with no zone (the app's default, Europe/Paris).
ZONES = ["Pacific/Kiritimati", "Pacific/Pago_Pago", "America/New_York", "Asia/Tokyo", None]
PER_ZONE = 3


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class _Spawns:
    def __init__(self) -> None:
        self.work: list[Any] = []

    def spawn(self, work: Any, name: str) -> None:
        self.work.append(work)

    async def run(self) -> None:
        work, self.work = self.work, []
        for item in work:
            await item


@dataclass
class Setup:
    tasks: DeliveryTasks
    queue: MemoryQueue
    spawns: _Spawns
    clock: Clock
    campaign_id: int
    zone_of: dict[int, str | None]  # subscriber id -> zone


async def _setup(
    db: Database,
    settings: Settings,
    start: datetime,
    *,
    local_time: str | None,
    past_zones: str = "tomorrow",
    transactional: bool = False,
    zones: list[str | None] = ZONES,
    **app_settings: Any,
) -> Setup:
    keys = await create_app(settings)
    await update_app(settings, keys.app_key, default_timezone="Europe/Paris", **app_settings)
    async with db.session() as session:
        app_id = (await session.execute(select(App.id).where(App.app_key == keys.app_key))).scalar_one()
        rows = []
        for index in range(PER_ZONE * len(zones)):
            endpoint = f"http://127.0.0.1:9/push/{index}"
            row = web_subscriber_row(app_id, f"reg-{index}", endpoint, "p256dh", "auth", start)
            rows.append({**row, "timezone": zones[index % len(zones)]})
        await session.execute(insert(Subscriber), rows)
        found = (await session.execute(select(Subscriber.id, Subscriber.timezone))).all()
        campaign = Campaign(
            app_id=app_id,
            status="scheduled",
            send_at=start,
            ttl_s=3600,
            display_time_s=0,
            payload=content.encode(content.Notification(campaign_id="", message="Hello", title="Hi")),
            audience={"kind": "all"},
            created_at=start,
            fanout_done=False,
            is_transactional=transactional,
            local_time=local_time,
            past_zones=past_zones if local_time else None,
        )
        campaign_id = (await CampaignRepository(session).add(campaign, [])).id
    clock = Clock(start)
    queue = MemoryQueue()
    spawns = _Spawns()
    tasks = DeliveryTasks(settings, db, queue, spawns, clock=clock)  # type: ignore[arg-type]
    await tasks.open()
    return Setup(tasks, queue, spawns, clock, campaign_id, {int(i): z for i, z in found})


async def _queued(setup: Setup) -> list[int]:
    """Run the queued fan-out steps and take the deliver jobs queued so far: their ledger ids."""
    ids: list[int] = []
    while (taken := await setup.queue.take(0.01)) is not None:
        if taken.job.kind == FANOUT:
            await setup.tasks.fan_out(taken.job)
        elif taken.job.kind == DELIVER:
            ids.extend(taken.job.ids)
        await setup.queue.ack(taken)
    return ids


async def _zones_of(db: Database, setup: Setup, delivery_ids: list[int]) -> dict[str | None, int]:
    async with db.session() as session:
        query = select(Delivery.subscriber_id).where(Delivery.id.in_(delivery_ids))
        subscribers = list((await session.execute(query)).scalars())
    counts: dict[str | None, int] = defaultdict(int)
    for subscriber_id in subscribers:
        counts[setup.zone_of[subscriber_id]] += 1
    return dict(counts)


async def _ledger(db: Database, campaign_id: int) -> dict[str | None, set[tuple[str, str | None, datetime]]]:
    """Per zone: the (status, reason, due time) of its rows."""
    async with db.session() as session:
        query = (
            select(Subscriber.timezone, Delivery.status, Delivery.last_error, Delivery.next_attempt_at)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.campaign_id == campaign_id)
        )
        found: dict[str | None, set[tuple[str, str | None, datetime]]] = defaultdict(set)
        for zone, status, reason, due in (await session.execute(query)).all():
            found[zone].add((status, reason, due if due.tzinfo else due.replace(tzinfo=UTC)))
        return dict(found)


async def _release_day(db: Database, setup: Setup, instants: list[datetime]) -> list[dict[str | None, int]]:
    """Start the campaign at the clock's time, then at each instant sweep: whom each queued first (the
    test sends nothing, so a queued row's lease lapses hours later and the sweep queues it again)."""
    await setup.tasks.start_due()
    await setup.spawns.run()
    seen = set(await _queued(setup))
    released = [await _zones_of(db, setup, sorted(seen))]
    for instant in instants:
        setup.clock.now = instant
        await setup.tasks.sweep()
        new = set(await _queued(setup)) - seen
        seen |= new
        released.append(await _zones_of(db, setup, sorted(new)))
    return released


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def test_each_zone_is_released_at_nine_local_across_the_date_line_and_a_dst_change(
    db: Database, settings: Settings
) -> None:
    # 05:00 UTC on 2026-03-08 is midnight in New York, two hours before it moves to summer time:
    # its 09:00 that day is 13:00 UTC (EDT), not 14:00.
    start = _utc("2026-03-08T05:00:00")
    setup = await _setup(db, settings, start, local_time="09:00")
    second = timedelta(seconds=1)
    instants = [
        _utc("2026-03-08T07:59:59"),  # nobody yet
        _utc("2026-03-08T08:00:00") + second,  # Paris (the app's default): 09:00 CET
        _utc("2026-03-08T13:00:00") + second,  # New York: 09:00 EDT, the day it changed
        _utc("2026-03-08T19:00:00") + second,  # Kiritimati (UTC+14): 09:00 on the 9th, past on the 8th
        _utc("2026-03-08T20:00:00") + second,  # Pago Pago (UTC-11): 09:00 on the 8th
        _utc("2026-03-09T00:00:00") + second,  # Tokyo: 09:00 on the 9th (14:00 at the start: past)
        _utc("2026-03-09T05:00:00"),  # the 24 hours are over: nobody is left
    ]
    released = await _release_day(db, setup, instants)
    assert released == [
        {},
        {},
        {None: PER_ZONE},
        {"America/New_York": PER_ZONE},
        {"Pacific/Kiritimati": PER_ZONE},
        {"Pacific/Pago_Pago": PER_ZONE},
        {"Asia/Tokyo": PER_ZONE},
        {},
    ]
    # Every recipient was in the ledger from the start, due at its own time.
    assert {
        zone: {due for _, _, due in rows} for zone, rows in (await _ledger(db, setup.campaign_id)).items()
    } == {
        None: {_utc("2026-03-08T08:00:00")},
        "America/New_York": {_utc("2026-03-08T13:00:00")},
        "Pacific/Kiritimati": {_utc("2026-03-08T19:00:00")},
        "Pacific/Pago_Pago": {_utc("2026-03-08T20:00:00")},
        "Asia/Tokyo": {_utc("2026-03-09T00:00:00")},
    }
    await setup.tasks.close()


async def test_zones_already_past_the_hour_may_get_it_at_once(db: Database, settings: Settings) -> None:
    start = _utc("2026-03-08T05:00:00")
    setup = await _setup(db, settings, start, local_time="09:00", past_zones="now")
    released = await _release_day(db, setup, [_utc("2026-03-08T08:00:01")])
    # Kiritimati (19:00 on the 9th), Pago Pago (18:00 on the 7th) and Tokyo (14:00) are past 09:00 on
    # their own day: at once. Paris (06:00) and New York (00:00) are not.
    assert released == [
        {"Pacific/Kiritimati": PER_ZONE, "Pacific/Pago_Pago": PER_ZONE, "Asia/Tokyo": PER_ZONE},
        {None: PER_ZONE},
    ]
    await setup.tasks.close()


async def test_quiet_hours_hold_non_transactional_notifications_until_they_end(
    db: Database, settings: Settings
) -> None:
    # 23:00 UTC: 00:00 in Paris (quiet, 22:00-07:00), 18:00 in New York, 08:00 in Tokyo.
    start = _utc("2026-03-09T23:00:00")
    zones: list[str | None] = ["America/New_York", "Asia/Tokyo", None]
    setup = await _setup(
        db, settings, start, local_time=None, zones=zones, quiet_start="22:00", quiet_end="07:00"
    )
    released = await _release_day(db, setup, [_utc("2026-03-10T06:00:01")])
    assert released == [{"America/New_York": PER_ZONE, "Asia/Tokyo": PER_ZONE}, {None: PER_ZONE}]
    ledger = await _ledger(db, setup.campaign_id)
    assert ledger[None] == {("pending", None, _utc("2026-03-10T06:00:00"))}  # 07:00 in Paris
    await setup.tasks.close()


async def test_quiet_hours_may_drop_them_as_expired_with_the_reason_quiet_hours(
    db: Database, settings: Settings
) -> None:
    start = _utc("2026-03-09T23:00:00")
    zones: list[str | None] = ["America/New_York", "Asia/Tokyo", None]
    setup = await _setup(
        db,
        settings,
        start,
        local_time=None,
        zones=zones,
        quiet_start="22:00",
        quiet_end="07:00",
        quiet_mode="drop",
    )
    released = await _release_day(db, setup, [_utc("2026-03-10T06:00:01")])
    assert released == [{"America/New_York": PER_ZONE, "Asia/Tokyo": PER_ZONE}, {}]
    ledger = await _ledger(db, setup.campaign_id)
    assert {zone: {(status, reason) for status, reason, _ in rows} for zone, rows in ledger.items()} == {
        "America/New_York": {("pending", None)},
        "Asia/Tokyo": {("pending", None)},
        None: {("expired", "quiet_hours")},
    }
    await setup.tasks.close()


@pytest.mark.parametrize("quiet_mode", ["hold", "drop"])
async def test_quiet_hours_leave_transactional_notifications_alone(
    db: Database, settings: Settings, quiet_mode: str
) -> None:
    start = _utc("2026-03-09T23:00:00")
    zones: list[str | None] = ["America/New_York", None]
    setup = await _setup(
        db,
        settings,
        start,
        local_time=None,
        zones=zones,
        transactional=True,
        quiet_start="22:00",
        quiet_end="07:00",
        quiet_mode=quiet_mode,
    )
    released = await _release_day(db, setup, [])
    assert released == [{"America/New_York": PER_ZONE, None: PER_ZONE}]
    assert (await _campaign(db, setup.campaign_id)).release_plan is None
    await setup.tasks.close()


async def _campaign(db: Database, campaign_id: int) -> Campaign:
    async with db.session() as session:
        found = await session.get(Campaign, campaign_id)
        assert found is not None
        return found

"""Recurring schedules on a real database with the scheduler's clock injected: occurrences across DST
changes (none missed, none doubled), a restart and downtime in between, and schedulers racing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from clarion import errors
from clarion.app_tenant.repository import AppRepository
from clarion.campaign.schemas import AudienceSpec, CampaignCreate, Content
from clarion.config import Settings
from clarion.db import Database
from clarion.models import App, Campaign, Schedule
from clarion.schedule import service
from clarion.schedule.tasks import ScheduleTasks
from tests.helpers import create_app

NEW_YORK = ZoneInfo("America/New_York")
CAMPAIGN = CampaignCreate(
    content=Content(message="Our picks", title="This week", redirect_url="https://example.com/week"),
    audience=AudienceSpec(),
    send_at=None,
    ttl_s=3600,
    display_time_s=60,
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def _schedule(
    db: Database, settings: Settings, rrule: str, starts_at: datetime, now: datetime, **extra: object
) -> tuple[int, int]:
    keys = await create_app(settings)
    async with db.session() as session:
        app_id = (await session.execute(select(App.id).where(App.app_key == keys.app_key))).scalar_one()
        app = await AppRepository(session).by_id(app_id)
        assert app is not None
        spec = service.ScheduleCreate(
            rrule=rrule,
            timezone="America/New_York",
            starts_at=starts_at,
            ends_at=extra.get("ends_at"),  # type: ignore[arg-type]
            campaign=CAMPAIGN,
        )
        schedule = await service.create(session, app, spec, now)
        return app_id, schedule.id


async def _occurrences(db: Database, schedule_id: int) -> list[tuple[datetime, str]]:
    """The campaigns the schedule made: (occurrence in UTC, status), in order."""
    async with db.session() as session:
        query = (
            select(Campaign.occurrence_at, Campaign.send_at, Campaign.status)
            .where(Campaign.schedule_id == schedule_id)
            .order_by(Campaign.occurrence_at)
        )
        rows = (await session.execute(query)).all()
    found = []
    for occurrence, send_at, status in rows:
        assert occurrence == send_at  # each occurrence's campaign is due at the occurrence
        found.append((occurrence if occurrence.tzinfo else occurrence.replace(tzinfo=UTC), str(status)))
    return found


async def _run(tasks: list[ScheduleTasks], clock: Clock, until: datetime, step: timedelta) -> None:
    """Tick every scheduler together at each step of the clock."""
    while clock.now < until:
        clock.now += step
        await asyncio.gather(*(task.start_due() for task in tasks))


async def test_a_daily_rule_keeps_its_local_hour_across_both_dst_changes(
    db: Database, settings: Settings
) -> None:
    # 01:30 every day: on 2026-11-01 it happens twice in New York (EDT, then EST) and must start once.
    # 02:30 is skipped by the clocks on 2026-03-08: it must still start (at 03:30 EDT), once.
    clock = Clock(_utc("2026-03-06T00:00:00"))
    _, spring = await _schedule(
        db, settings, "FREQ=DAILY;BYHOUR=2;BYMINUTE=30", datetime(2026, 3, 6, 2, 30), clock.now
    )
    _, autumn = await _schedule(
        db, settings, "FREQ=DAILY;BYHOUR=1;BYMINUTE=30", datetime(2026, 10, 30, 1, 30), clock.now
    )
    first = ScheduleTasks(db, clock)
    await _run([first], clock, _utc("2026-03-09T00:00:00"), timedelta(minutes=20))
    # A restart: a new scheduler (the schedule's state is all in the database), after a day down.
    clock.now = _utc("2026-03-10T12:00:00")
    await _run([ScheduleTasks(db, clock)], clock, _utc("2026-03-11T00:00:00"), timedelta(minutes=20))
    assert [when for when, _ in await _occurrences(db, spring)] == [
        _utc("2026-03-06T07:30:00"),  # 02:30 EST
        _utc("2026-03-07T07:30:00"),
        _utc("2026-03-08T07:30:00"),  # 02:30 does not exist: 03:30 EDT
        _utc("2026-03-09T06:30:00"),  # 02:30 EDT, started when the scheduler was back (none missed)
        _utc("2026-03-10T06:30:00"),
    ]
    clock.now = _utc("2026-10-30T00:00:00")
    await _run([ScheduleTasks(db, clock)], clock, _utc("2026-11-03T00:00:00"), timedelta(minutes=20))
    assert await _occurrences(db, autumn) == [
        (_utc("2026-10-30T05:30:00"), "scheduled"),
        (_utc("2026-10-31T05:30:00"), "scheduled"),
        (_utc("2026-11-01T05:30:00"), "scheduled"),  # the first 01:30 (EDT); not again at 06:30 UTC
        (_utc("2026-11-02T06:30:00"), "scheduled"),  # 01:30 EST
    ]


async def test_two_schedulers_racing_start_each_occurrence_once(db: Database, settings: Settings) -> None:
    clock = Clock(_utc("2026-03-07T00:00:00"))
    _, schedule_id = await _schedule(db, settings, "FREQ=HOURLY;COUNT=30", clock.now, clock.now)
    racers = [ScheduleTasks(db, clock) for _ in range(2)]
    # Both tick at each instant of the clock, concurrently, across the DST change at 07:00 UTC.
    await _run(racers, clock, _utc("2026-03-08T12:00:00"), timedelta(minutes=30))
    occurrences = [when for when, _ in await _occurrences(db, schedule_id)]
    assert occurrences == [_utc("2026-03-07T00:00:00") + timedelta(hours=h) for h in range(30)]
    async with db.session() as session:
        schedule = await session.get(Schedule, schedule_id)
        assert schedule is not None
        assert (schedule.status, schedule.next_at, schedule.occurrences) == ("ended", None, 30)


async def test_a_paused_schedule_skips_what_falls_in_the_pause_and_a_cancelled_one_stops(
    db: Database, settings: Settings
) -> None:
    clock = Clock(_utc("2026-04-01T00:00:00"))
    app_id, schedule_id = await _schedule(
        db, settings, "FREQ=DAILY;BYHOUR=9;BYMINUTE=0", datetime(2026, 4, 1, 9, 0), clock.now
    )
    tasks = ScheduleTasks(db, clock)
    await _run([tasks], clock, _utc("2026-04-02T00:00:00"), timedelta(hours=1))
    async with db.session() as session:
        app = await AppRepository(session).by_id(app_id)
        assert app is not None
        await service.pause(session, app, schedule_id)
    await _run([tasks], clock, _utc("2026-04-04T00:00:00"), timedelta(hours=1))
    async with db.session() as session:
        app = await AppRepository(session).by_id(app_id)
        assert app is not None
        resumed = await service.resume(session, app, schedule_id, clock.now)
        assert resumed.next_at is not None
        assert resumed.next_at.replace(tzinfo=UTC) == _utc("2026-04-04T13:00:00")
    await _run([tasks], clock, _utc("2026-04-05T00:00:00"), timedelta(hours=1))
    async with db.session() as session:
        app = await AppRepository(session).by_id(app_id)
        assert app is not None
        cancelled = await service.cancel(session, app, schedule_id)
        assert (cancelled.status, cancelled.next_at) == ("cancelled", None)
    await _run([tasks], clock, _utc("2026-04-07T00:00:00"), timedelta(hours=1))
    assert [when for when, _ in await _occurrences(db, schedule_id)] == [
        _utc("2026-04-01T13:00:00"),  # 09:00 EDT
        _utc("2026-04-04T13:00:00"),  # the 2nd and 3rd fell in the pause
    ]
    async with db.session() as session:
        app = await AppRepository(session).by_id(app_id)
        assert app is not None
        with pytest.raises(errors.ScheduleFinished):
            await service.pause(session, app, schedule_id)


@pytest.mark.parametrize(
    ("rrule", "field"),
    [
        ("FREQ=MINUTELY", "rrule"),
        ("FREQ=DAILY;BYHOUR=25", "rrule"),
        ("DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY", "rrule"),
        ("FREQ=DAILY;COUNT=2", "rrule"),  # both in the past: no occurrence from now on
        # Rules that could never occur (dateutil would search them up to the year 9999), refused at once.
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "rrule"),
        ("FREQ=MONTHLY;BYDAY=6MO", "rrule"),
        ("FREQ=YEARLY;BYSETPOS=1;BYDAY=MO", "rrule"),
    ],
)
async def test_a_rule_that_cannot_be_read_is_refused_naming_the_field(
    db: Database, settings: Settings, rrule: str, field: str
) -> None:
    with pytest.raises(errors.InvalidField) as refused:
        await _schedule(db, settings, rrule, _utc("2026-01-01T00:00:00"), _utc("2026-02-01T00:00:00"))
    assert refused.value.field == field

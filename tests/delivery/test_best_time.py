"""Best-time campaigns through the real fan-out and sweep on a real database, with the scheduler's clock
injected: each recipient is released at the local hour of most of its clicks of the last 30 days, or at
the campaign's local_time without any (docs/scheduling.md, "Best time")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from clarion import content
from clarion.campaign import service as campaigns
from clarion.campaign.repository import CampaignRepository
from clarion.config import Settings
from clarion.db import Database
from clarion.delivery.tasks import DeliveryTasks
from clarion.models import App, Campaign, Delivery, Event, Subscriber
from clarion.queue import MemoryQueue
from tests.delivery.test_local_time import Clock, Setup, _queued, _Spawns
from tests.helpers import create_app, update_app, web_subscriber_row


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# 12:00 UTC on 2026-03-09: New York moved to summer time the day before (07:00 UTC on the 8th).
START = _utc("2026-03-09T12:00:00")

# name -> (zone, clicks as UTC times, other events as UTC times)
SUBSCRIBERS: dict[str, tuple[str | None, list[str], list[str]]] = {
    # 09:10 EST, 09:30 EDT (two UTC hours, one local hour: DST-correct) and 20:00 EST once; three
    # "received" at 20:00 EST do not count.
    "new_york": (
        "America/New_York",
        ["2026-03-05T14:10:00", "2026-03-08T13:30:00", "2026-03-07T01:00:00"],
        ["2026-03-04T01:00:00", "2026-03-05T01:00:00", "2026-03-06T01:00:00"],
    ),
    "tokyo": ("Asia/Tokyo", ["2026-03-01T11:15:00"], []),  # 20:15 JST: past at the start (21:00)
    "kiritimati": ("Pacific/Kiritimati", ["2026-03-05T12:30:00"], []),  # 02:30: the start's own hour
    # Its only click is 31 days old: the fallback, 18:00 in the app's default zone (Paris, CET).
    "stale": (None, ["2026-02-06T11:00:00"], []),
    "tokyo_no_clicks": ("Asia/Tokyo", [], []),  # no clicks: 18:00 JST tomorrow (21:00 at the start)
    # One click at 07:00 JST, one at 21:00 JST: a tie goes to the earlier hour, 07:00 on the 10th.
    "tie": ("Asia/Tokyo", ["2026-03-02T22:00:00", "2026-03-03T12:00:00"], []),
}


async def _setup(db: Database, settings: Settings) -> tuple[Setup, dict[int, str]]:
    keys = await create_app(settings)
    await update_app(settings, keys.app_key, default_timezone="Europe/Paris")
    async with db.session() as session:
        app_id = (await session.execute(select(App.id).where(App.app_key == keys.app_key))).scalar_one()
        rows = [
            {
                **web_subscriber_row(app_id, name, f"http://127.0.0.1:9/push/{name}", "p", "a", START),
                "timezone": zone,
            }
            for name, (zone, _, _) in SUBSCRIBERS.items()
        ]
        await session.execute(insert(Subscriber), rows)
        ids = {
            str(name): int(i)
            for name, i in (await session.execute(select(Subscriber.reg_id, Subscriber.id))).all()
        }
        repository = CampaignRepository(session)
        # Events belong to earlier campaigns, one event of a type per subscriber and campaign.
        earlier = [
            (await repository.add(_campaign(app_id, START - timedelta(days=40)), [])).id for _ in range(3)
        ]
        events = [
            {"campaign_id": earlier[index], "subscriber_id": ids[name], "type": kind, "created_at": _utc(at)}
            for name, (_, clicks, others) in SUBSCRIBERS.items()
            for kind, times in (("clicked", clicks), ("received", others))
            for index, at in enumerate(times)
        ]
        await session.execute(insert(Event), events)
        campaign = _campaign(app_id, START, best_time=True, local_time="18:00")
        campaign_id = (await repository.add(campaign, [])).id
    clock = Clock(START)
    queue, spawns = MemoryQueue(), _Spawns()
    tasks = DeliveryTasks(settings, db, queue, spawns, clock=clock)  # type: ignore[arg-type]
    await tasks.open()
    return Setup(tasks, queue, spawns, clock, campaign_id, {}), {i: name for name, i in ids.items()}


def _campaign(app_id: int, send_at: datetime, **timing: object) -> Campaign:
    return Campaign(
        app_id=app_id,
        status="scheduled" if timing else "sent",
        send_at=send_at,
        ttl_s=3600,
        display_time_s=0,
        payload=content.encode(content.Notification(campaign_id="", message="Hello", title="Hi")),
        audience={"kind": "all"},
        created_at=send_at,
        fanout_done=not timing,
        past_zones="tomorrow" if timing else None,
        **timing,
    )


async def _names(db: Database, names: dict[int, str], delivery_ids: list[int]) -> set[str]:
    async with db.session() as session:
        query = select(Delivery.subscriber_id).where(Delivery.id.in_(delivery_ids))
        return {names[subscriber_id] for subscriber_id in (await session.execute(query)).scalars()}


async def test_each_recipient_is_released_at_its_most_engaged_local_hour_or_the_fallback(
    db: Database, settings: Settings
) -> None:
    setup, names = await _setup(db, settings)
    await setup.tasks.start_due()
    await setup.spawns.run()
    seen = set(await _queued(setup))
    released = [await _names(db, names, sorted(seen))]
    second = timedelta(seconds=1)
    instants = [
        _utc("2026-03-09T12:59:59"),  # nobody more
        _utc("2026-03-09T13:00:00") + second,  # New York: 09:00 EDT
        _utc("2026-03-09T17:00:00") + second,  # no recent click, no zone: 18:00 in Paris
        _utc("2026-03-09T22:00:00") + second,  # the tie: 07:00 JST on the 10th
        _utc("2026-03-10T09:00:00") + second,  # no click, Tokyo: 18:00 JST on the 10th
        _utc("2026-03-10T11:00:00") + second,  # Tokyo's clicker: 20:00 JST on the 10th
        _utc("2026-03-10T12:00:00"),  # the 24 hours are over
    ]
    for instant in instants:
        setup.clock.now = instant
        await setup.tasks.sweep()
        new = set(await _queued(setup)) - seen
        seen |= new
        released.append(await _names(db, names, sorted(new)))
    assert released == [
        {"kiritimati"},
        set(),
        {"new_york"},
        {"stale"},
        {"tie"},
        {"tokyo_no_clicks"},
        {"tokyo"},
        set(),
    ]

    # The chosen hour is recorded in the ledger, and shown with each outcome.
    async with db.session() as session:
        found = await session.get(Campaign, setup.campaign_id)
        assert found is not None
        rows = await campaigns.outcomes(session, found, None, 10)
        query = select(Delivery.subscriber_id, Delivery.next_attempt_at).where(
            Delivery.campaign_id == setup.campaign_id
        )
        due = {
            names[i]: at if at.tzinfo else at.replace(tzinfo=UTC)
            for i, at in (await session.execute(query)).all()
        }
    assert {reg_id: best_hour for _, reg_id, _, _, _, _, best_hour, _ in rows} == {
        "new_york": 9,
        "tokyo": 20,
        "kiritimati": 2,
        "stale": None,
        "tokyo_no_clicks": None,
        "tie": 7,
    }
    assert due == {
        "new_york": _utc("2026-03-09T13:00:00"),
        "tokyo": _utc("2026-03-10T11:00:00"),
        "kiritimati": START,
        "stale": _utc("2026-03-09T17:00:00"),
        "tokyo_no_clicks": _utc("2026-03-10T09:00:00"),
        "tie": _utc("2026-03-09T22:00:00"),
    }
    await setup.tasks.close()

"""Ledger retention: a finished campaign's rows past the horizon are folded into its counters.

Statistics read the same before and after; the fold goes in batches of a bounded size; a campaign still
sending is not touched; engagement for a folded campaign is refused as past retention.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import cast

import pytest
from sqlalchemy import func, select

from clarion.composition import open_database
from clarion.config import Settings
from clarion.db import Database, utcnow
from clarion.delivery import tasks
from clarion.delivery.tasks import Retention, fold_step
from clarion.models import Delivery
from clarion.queue import Registry
from clarion.subscriber.proof import AUTH_HEADER
from tests.conftest import Api, make_settings
from tests.fakes.push_service import FakePushService, Respond
from tests.helpers import AppKeys, create_app, push, stats, subscribe, wait_for_status

# Any finished campaign is past a horizon a day ahead: no test waits 30 days.
AHEAD = timedelta(days=1)


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The engine's own retention pass stays off: each test folds when it chooses.
    return make_settings(database_url, ledger_retention_days=0)


async def _rows(db: Database, campaign_id: str) -> int:
    async with db.session() as session:
        query = select(func.count()).where(Delivery.campaign_id == int(campaign_id))
        return int((await session.execute(query)).scalar_one())


async def _fold(db: Database, limit: int) -> int:
    now = utcnow()
    return await fold_step(db, limit)(now + AHEAD, now)


async def _event(
    api: Api, keys: AppKeys, reg_id: str, auth: str, campaign_id: str, kind: str
) -> tuple[int, str]:
    body = {"app_key": keys.app_key, "regId": reg_id, "campaign_id": campaign_id, "type": kind}
    response = await api.client.post("/sdk/v1/events", json=body, headers={AUTH_HEADER: auth})
    return response.status_code, response.text


async def test_statistics_read_the_same_after_folding_in_bounded_batches(
    api: Api, fake: FakePushService
) -> None:
    keys = await create_app(api.settings)
    subs = [await subscribe(api.client, keys, fake) for _ in range(5)]
    fake.script(subs[4][1].sub_id, [Respond(410)])  # one gone: folded into its own counter
    campaign_id = await push(api.client, keys)
    await wait_for_status(api.client, keys, campaign_id, "SENT")
    for reg_id, sub in subs[:2]:
        assert await _event(api, keys, reg_id, sub.auth, campaign_id, "received") == (204, "")
    assert await _event(api, keys, subs[0][0], subs[0][1].auth, campaign_id, "clicked") == (204, "")
    before = await stats(api.client, keys, campaign_id)
    assert before == {"status": "SENT", "send": 4, "received": 2, "clicked": 1, "closed": 0}

    db = open_database(api.settings, pool_size=1)
    try:
        folded = []
        for _ in range(4):
            folded.append(await _fold(db, limit=2))
            assert await stats(api.client, keys, campaign_id) == before
        assert folded == [2, 2, 1, 0]  # at most the batch size per transaction, then nothing left
        assert await _rows(db, campaign_id) == 0
    finally:
        await db.dispose()


async def test_events_for_a_folded_campaign_are_refused_and_earlier_ones_still_count(
    api: Api, fake: FakePushService
) -> None:
    keys = await create_app(api.settings)
    (reg_id, sub), (other_id, other) = [await subscribe(api.client, keys, fake) for _ in range(2)]
    campaign_id = await push(api.client, keys)
    await wait_for_status(api.client, keys, campaign_id, "SENT")
    assert await _event(api, keys, reg_id, sub.auth, campaign_id, "clicked") == (204, "")
    db = open_database(api.settings, pool_size=1)
    try:
        assert await _fold(db, limit=tasks.FOLD_BATCH) == 2
    finally:
        await db.dispose()

    status, body = await _event(api, keys, other_id, other.auth, campaign_id, "received")
    assert status == 410
    assert body == (
        '{"error":"campaign_past_retention","message":"This campaign is past the ledger\'s retention: '
        'its engagement is no longer counted","field":"campaign_id"}'
    )
    # Repeating an event already counted changes nothing either: it was counted once, and stays.
    assert (await _event(api, keys, reg_id, sub.auth, campaign_id, "clicked"))[0] == 410
    final = await stats(api.client, keys, campaign_id)
    assert final == {"status": "SENT", "send": 2, "received": 0, "clicked": 1, "closed": 0}
    # A campaign that never existed is still the plain 422.
    status, body = await _event(api, keys, reg_id, sub.auth, "999999", "received")
    assert (status, body) == (
        422,
        '{"error":"invalid_field","message":"There is no campaign with this id","field":"campaign_id"}',
    )


async def test_a_campaign_still_sending_is_not_touched(api: Api, fake: FakePushService) -> None:
    keys = await create_app(api.settings)
    (_, first), (_, slow) = [await subscribe(api.client, keys, fake) for _ in range(2)]
    finished = await push(api.client, keys)
    await wait_for_status(api.client, keys, finished, "SENT")
    # The next campaign's second recipient answers 503 once: its row waits a second for its retry.
    fake.script(slow.sub_id, [Respond(503, retry_after="1")])
    sending = await push(api.client, keys)
    await asyncio.to_thread(fake.wait_for, 3, 10)
    db = open_database(api.settings, pool_size=1)
    try:
        assert (await stats(api.client, keys, sending))["status"] == "SENDING"
        assert await _fold(db, limit=tasks.FOLD_BATCH) == 2  # the finished campaign's rows only
        assert await _fold(db, limit=tasks.FOLD_BATCH) == 0
        assert await _rows(db, sending) == 2
        final = await wait_for_status(api.client, keys, sending, "SENT")
        assert final == {"status": "SENT", "send": 2, "received": 0, "clicked": 0, "closed": 0}
        assert len(fake.received_for(slow.sub_id)) == 2
        assert len(fake.received_for(first.sub_id)) == 2
        assert await stats(api.client, keys, finished) == {
            "status": "SENT",
            "send": 2,
            "received": 0,
            "clicked": 0,
            "closed": 0,
        }
    finally:
        await db.dispose()


async def test_concurrent_folds_count_every_row_once(api: Api, fake: FakePushService) -> None:
    keys = await create_app(api.settings)
    for _ in range(6):
        await subscribe(api.client, keys, fake)
    campaign_id = await push(api.client, keys)
    await wait_for_status(api.client, keys, campaign_id, "SENT")
    dbs = [open_database(api.settings, pool_size=1) for _ in range(3)]
    try:
        while sum(await asyncio.gather(*(_fold(db, limit=2) for db in dbs))):
            pass
        assert await _rows(dbs[0], campaign_id) == 0
    finally:
        for db in dbs:
            await db.dispose()
    assert (await stats(api.client, keys, campaign_id))["send"] == 6


async def test_a_pass_stops_when_nothing_is_left_and_retention_zero_keeps_everything(
    api: Api, fake: FakePushService
) -> None:
    keys = await create_app(api.settings)
    for _ in range(3):
        await subscribe(api.client, keys, fake)
    campaign_id = await push(api.client, keys)
    await wait_for_status(api.client, keys, campaign_id, "SENT")
    db = open_database(api.settings, pool_size=1)
    try:
        kept = Retention(api.settings, cast(Registry, _NoSpawn()), fold_step(db, 2), "test")
        await kept.tick()  # CLARION_LEDGER_RETENTION_DAYS=0: nothing is started
        assert await _rows(db, campaign_id) == 3
        # A horizon a day ahead is "-1 days" of retention: every finished campaign is past it.
        ahead = Retention(
            make_settings(api.settings.database_url, ledger_retention_days=1),
            cast(Registry, _NoSpawn()),
            _ahead(db),
            "t",
        )
        assert await ahead.run_pass() == 3
        assert await ahead.run_pass() == 0
        assert await _rows(db, campaign_id) == 0
    finally:
        await db.dispose()


def _ahead(db: Database) -> tasks.FoldStep:
    step = fold_step(db, 2)

    async def shifted(horizon: object, now: object) -> int:
        current = utcnow()
        return await step(current + AHEAD, current)

    return shifted


class _NoSpawn:
    """A registry that must not be asked to start anything."""

    def spawn(self, work: object, name: str) -> None:
        raise AssertionError(f"{name} started although retention is off")

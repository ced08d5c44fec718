"""Pausing and resuming a scheduled campaign (`campaign.service.pause_scheduled`, `resume_scheduled`)
against the real scheduler with its clock injected: a paused campaign is not claimed; resumed after its
send time it starts at the scheduler's next tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from clarion import content, errors
from clarion.campaign import service as campaigns
from clarion.campaign.repository import CampaignRepository
from clarion.config import Settings
from clarion.db import Database
from clarion.delivery import cancel
from clarion.delivery.tasks import DeliveryTasks
from clarion.models import App, Campaign, Subscriber
from clarion.queue import MemoryQueue
from tests.delivery.test_local_time import Clock, _Spawns
from tests.helpers import create_app, web_subscriber_row

SEND_AT = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


async def _scheduled(db: Database, settings: Settings) -> tuple[App, int]:
    keys = await create_app(settings)
    async with db.session() as session:
        app = (await session.execute(select(App).where(App.app_key == keys.app_key))).scalar_one()
        row = web_subscriber_row(app.id, "reg-1", "http://127.0.0.1:9/push/1", "p", "a", SEND_AT)
        await session.execute(insert(Subscriber), [row])
        campaign = Campaign(
            app_id=app.id,
            status="scheduled",
            send_at=SEND_AT,
            ttl_s=3600,
            display_time_s=0,
            payload=content.encode(content.Notification(campaign_id="", message="Hello", title="Hi")),
            audience={"kind": "all"},
            created_at=SEND_AT - timedelta(hours=1),
            fanout_done=False,
        )
        return app, (await CampaignRepository(session).add(campaign, [])).id


async def _state(db: Database, campaign_id: int) -> tuple[str, bool]:
    """The campaign's status, and whether a scheduler started it."""
    async with db.session() as session:
        found = await session.get(Campaign, campaign_id)
        assert found is not None
        return found.status, found.started_at is not None


async def test_a_paused_campaign_is_not_started_until_resumed_even_past_its_send_time(
    db: Database, settings: Settings
) -> None:
    app, campaign_id = await _scheduled(db, settings)
    clock = Clock(SEND_AT - timedelta(minutes=5))
    spawns = _Spawns()
    tasks = DeliveryTasks(settings, db, MemoryQueue(), spawns, clock=clock)  # type: ignore[arg-type]
    await tasks.open()
    async with db.session() as session:
        assert (await campaigns.pause_scheduled(session, app, campaign_id)).status == "paused"
    clock.now = SEND_AT + timedelta(hours=2)  # its send time passes while it is paused
    await tasks.start_due()
    await spawns.run()
    assert await _state(db, campaign_id) == ("paused", False)

    async with db.session() as session:
        with pytest.raises(errors.CampaignNotSending):
            await campaigns.pause_scheduled(session, app, campaign_id)  # paused already
    async with db.session() as session:
        assert (await campaigns.resume_scheduled(session, app, campaign_id)).status == "scheduled"
    await tasks.start_due()
    await spawns.run()
    assert await _state(db, campaign_id) == ("sending", True)

    # Started: it can no longer be paused as a scheduled campaign, nor resumed.
    async with db.session() as session:
        with pytest.raises(errors.CampaignNotSending):
            await campaigns.pause_scheduled(session, app, campaign_id)
    async with db.session() as session:
        with pytest.raises(errors.CampaignNotPaused):
            await campaigns.resume_scheduled(session, app, campaign_id)
    await tasks.close()


async def test_a_paused_campaign_can_be_cancelled_and_then_not_resumed(
    db: Database, settings: Settings
) -> None:
    app, campaign_id = await _scheduled(db, settings)
    async with db.session() as session:
        await campaigns.pause_scheduled(session, app, campaign_id)
    async with db.session() as session:
        assert (await cancel.cancel(session, app, campaign_id)).status == "cancelled"
    async with db.session() as session:
        with pytest.raises(errors.CampaignNotPaused):
            await campaigns.resume_scheduled(session, app, campaign_id)
    async with db.session() as session:
        with pytest.raises(errors.NotFound):
            await campaigns.pause_scheduled(session, app, campaign_id + 1)
    assert await _state(db, campaign_id) == ("cancelled", False)

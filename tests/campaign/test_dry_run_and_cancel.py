"""The recipient count before sending (`campaign.service.dry_run`, which stores nothing) and cancelling a
scheduled or sending campaign (`delivery.cancel`): what the console and /v1 both call."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from clarion import errors
from clarion.campaign import service as campaigns
from clarion.campaign.repository import CampaignRepository
from clarion.campaign.schemas import AudienceSpec, SegmentTerm
from clarion.db import Database, utcnow
from clarion.delivery import cancel
from clarion.models import App
from tests.app_tenant.factory import new_app, new_segment, push, stats, subscribe
from tests.conftest import Api
from tests.fakes.push_service import FakePushService


async def test_the_dry_run_counts_what_a_send_would_reach_and_stores_nothing(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    client = quiet_api.client
    tenant = await new_app(db, plan="unlimited")
    reg_ids = [await subscribe(client, tenant, fake) for _ in range(4)]
    for reg_id, tags in zip(reg_ids, [["News"], ["news", "sport"], ["sport"], []], strict=True):
        for tag in tags:
            answer = await client.post("/api/v3/tag", params={"regId": reg_id, "name": tag}, auth=tenant.auth)
            assert answer.status_code == 200, answer.text
    answer = await client.post("/api/v3/alias", params={"regId": reg_ids[3], "name": "ann"}, auth=tenant.auth)
    assert answer.status_code == 200, answer.text
    await new_segment(db, tenant, "News only", [("AND", "news"), ("AND_NOT", "sport")])

    audiences = {
        "everyone": AudienceSpec(),
        "tags": AudienceSpec(kind="tags", values=("NEWS", "nobody")),
        "segment terms": AudienceSpec(
            kind="tags_segment", terms=(SegmentTerm("AND", "sport"), SegmentTerm("AND_NOT", "news"))
        ),
        "saved segment": AudienceSpec(segment="News only"),
        "aliases": AudienceSpec(kind="aliases", values=("ann", "bob")),
        "tokens": AudienceSpec(kind="tokens", values=(reg_ids[0], "not-a-reg-id")),
    }
    async with db.session() as session:
        app = await session.get(App, tenant.app_id)
        assert app is not None
        counts = {
            name: sum((await campaigns.dry_run(session, app, spec)).values())
            for name, spec in audiences.items()
        }
        with pytest.raises(errors.InvalidField) as unknown:
            await campaigns.dry_run(
                session, app, AudienceSpec(kind="tags_segment", terms=(SegmentTerm("AND", "nobody"),))
            )
        assert await campaigns.recent(session, app, 10) == []
    assert counts == {
        "everyone": 4,
        "tags": 2,
        "segment terms": 1,
        "saved segment": 1,
        "aliases": 1,
        "tokens": 1,
    }
    assert (unknown.value.field, unknown.value.message) == (
        "audience.tags_segment[0].name",
        "audience.tags_segment[0].name: there is no tag 'nobody' in this app",
    )


async def test_a_scheduled_campaign_is_cancelled_once_and_then_never_sent(
    quiet_api: Api, db: Database
) -> None:
    client = quiet_api.client
    tenant = await new_app(db, plan="unlimited")
    later_ms = str(int((time.time() + 3600) * 1000))
    answer = await push(client, tenant, send_date=later_ms)
    assert answer.status_code == 200, answer.text
    campaign_id = int(answer.json()["id"])
    async with db.session() as session:
        app = await session.get(App, tenant.app_id)
        assert app is not None
        cancelled = await cancel.cancel(session, app, campaign_id)
        assert cancelled.status == "cancelled"
    async with db.session() as session:
        app = await session.get(App, tenant.app_id)
        assert app is not None
        with pytest.raises(errors.CampaignFinished) as again:
            await cancel.cancel(session, app, campaign_id)
    assert again.value.message == "This campaign has finished: there is nothing to cancel"
    assert await stats(client, tenant, str(campaign_id)) == {
        "status": "CANCELLED",
        "send": 0,
        "received": 0,
        "clicked": 0,
        "closed": 0,
    }


async def test_a_sending_campaign_is_cancelled_and_neither_claimed_again_nor_completed(
    quiet_api: Api, db: Database
) -> None:
    client = quiet_api.client
    tenant = await new_app(db, plan="unlimited")
    answer = await push(client, tenant)
    campaign_id = int(answer.json()["id"])
    now = utcnow()
    async with db.session() as session:  # what a scheduler does (this API runs no engine)
        assert await CampaignRepository(session).claim_due(now, now - timedelta(seconds=1), 10) == [
            campaign_id
        ]
    async with db.session() as session:
        app = await session.get(App, tenant.app_id)
        assert app is not None
        await cancel.cancel(session, app, campaign_id)
    async with db.session() as session:
        repo = CampaignRepository(session)
        assert await repo.claim_due(utcnow(), utcnow() + timedelta(seconds=30), 10) == []
        await repo.finish_fanout(campaign_id)
        assert await repo.complete_if_fanned_out(campaign_id, utcnow()) is False
    assert (await stats(client, tenant, str(campaign_id)))["status"] == "CANCELLED"

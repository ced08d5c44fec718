"""Plans: the free plan's 10 push campaigns per UTC day through the API; unlimited has no quota."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import update

from clarion.db import Database
from clarion.models import Campaign
from tests.app_tenant.factory import new_app, push, stats
from tests.conftest import Api

QUOTA = {
    "httpStatus": "TOO_MANY_REQUESTS",
    "error": "Too Many Requests",
    "errorDescription": "The free plan allows 10 push campaigns per day through the API",
}


async def test_free_plan_allows_ten_campaigns_per_utc_day(quiet_api: Api, db: Database) -> None:
    client = quiet_api.client
    tenant, neighbour = await new_app(db), await new_app(db, name="neighbour")
    for _ in range(3):  # refused requests create nothing and use no quota
        answer = await push(client, tenant, ttl=-1)
        assert answer.status_code == 422
    ids = []
    for _ in range(10):
        answer = await push(client, tenant)
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["id"])
    for _ in range(2):
        answer = await push(client, tenant)
        assert (answer.status_code, answer.json()) == (429, QUOTA)
    # Scheduling for later is a campaign like any other.
    answer = await push(client, tenant, send_date="99999999999999")
    assert (answer.status_code, answer.json()) == (429, QUOTA)
    # The quota is per app, and the campaigns already created still answer.
    assert (await push(client, neighbour)).status_code == 200
    assert (await stats(client, tenant, ids[-1]))["status"] == "SCHEDULED"

    # Yesterday's campaigns (UTC) no longer count.
    async with db.session() as session:
        await session.execute(
            update(Campaign)
            .where(Campaign.app_id == tenant.app_id)
            .values(created_at=Campaign.created_at - timedelta(days=1))
        )
    answer = await push(client, tenant)
    assert answer.status_code == 200, answer.text


async def test_free_plan_quota_holds_under_concurrent_requests(quiet_api: Api, db: Database) -> None:
    tenant = await new_app(db)
    answers = await asyncio.gather(*(push(quiet_api.client, tenant) for _ in range(16)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * 10 + [429] * 6, [
        answer.text for answer in answers if answer.status_code >= 500
    ]
    assert all(answer.json() == QUOTA for answer in answers if answer.status_code == 429)


async def test_unlimited_plan_has_no_quota(quiet_api: Api, db: Database) -> None:
    tenant = await new_app(db, plan="unlimited")
    for _ in range(12):
        answer = await push(quiet_api.client, tenant)
        assert answer.status_code == 200, answer.text

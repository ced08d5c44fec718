"""POST /sdk/v1/subscribers/{regId}/test: the demo page's "send me a notification", delivered for real."""

from __future__ import annotations

import asyncio
import json
import time

from clarion.db import Database
from clarion.subscriber.self_service import TEST_INTERVAL_S, TEST_MESSAGE, TEST_PUSH_TAG, TEST_TITLE
from tests.app_tenant.factory import new_app, wait_for_stats
from tests.conftest import Api
from tests.fakes.push_service import FakePushService, Received
from tests.sdk.test_self_service import REFUSED
from tests.sdk.visitor import new_visitor


async def received(fake: FakePushService, sub_id: str, count: int, timeout_s: float = 10) -> list[Received]:
    deadline = time.monotonic() + timeout_s
    while True:
        messages = fake.received_for(sub_id)
        if len(messages) >= count:
            return messages
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(messages)} of {count} messages for {sub_id} after {timeout_s} s")
        await asyncio.sleep(0.05)


async def test_a_browser_sends_itself_a_notification(api: Api, db: Database, fake: FakePushService) -> None:
    tenant = await new_app(db, plan="unlimited")
    visitor = await new_visitor(api.client, tenant, fake)
    bystander = await new_visitor(api.client, tenant, fake)

    answer = await visitor.call(
        api.client, "POST", "/test", {"title": "Hi me", "redirect_url": "https://example.com/demo"}
    )
    assert answer.status_code == 202, answer.text
    campaign_id = answer.json()["campaign_id"]
    assert answer.json() == {"campaign_id": campaign_id}

    [message] = await received(fake, visitor.subscription.sub_id, 1)
    assert json.loads(message.payload) == {
        "campaign_id": campaign_id,
        "title": "Hi me",
        "message": TEST_MESSAGE,
        "icon": None,
        "image": None,
        "redirect_url": "https://example.com/demo",
        "buttons": [],
        "display_time": 60,
        "tag": TEST_PUSH_TAG,
    }
    expected = {"status": "SENT", "send": 1, "received": 0, "clicked": 0, "closed": 0}
    assert await wait_for_stats(api.client, tenant, campaign_id, expected) == expected
    assert fake.received_for(bystander.subscription.sub_id) == []


async def test_defaults_and_the_per_subscriber_interval(
    api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db, plan="unlimited")
    visitor = await new_visitor(api.client, tenant, fake)
    other = await new_visitor(api.client, tenant, fake)

    first = await api.client.post(visitor.path("/test"), params=visitor.params(), headers=visitor.headers())
    assert first.status_code == 202, first.text
    [message] = await received(fake, visitor.subscription.sub_id, 1)
    payload = json.loads(message.payload)
    assert (payload["title"], payload["message"]) == (TEST_TITLE, TEST_MESSAGE)
    assert payload["redirect_url"] == f"http://clarion.test/sdk/v1/demo?appKey={tenant.app_key}"

    again = await visitor.call(api.client, "POST", "/test", {})
    assert again.status_code == 429
    assert again.json() == {
        "error": "quota_exceeded",
        "message": f"One test notification per subscriber every {TEST_INTERVAL_S} seconds",
    }
    # The interval is per subscriber.
    assert (await other.call(api.client, "POST", "/test", {})).status_code == 202


async def test_refusals(api: Api, db: Database, fake: FakePushService) -> None:
    tenant = await new_app(db, plan="unlimited")
    visitor = await new_visitor(api.client, tenant, fake)
    client = api.client

    wrong = await visitor.call(client, "POST", "/test", {}, headers=visitor.headers("wrong"))
    assert (wrong.status_code, wrong.json()) == (401, REFUSED)
    for body, field in (
        ({"redirect_url": "javascript:alert(1)"}, "redirect_url"),
        ({"title": ""}, "title"),
        ({"message": "m" * 501}, "message"),
        ({"title": 1}, "title"),
    ):
        answer = await visitor.call(client, "POST", "/test", body)
        assert (answer.status_code, answer.json()["field"]) == (422, field), body

    gone = await client.delete(visitor.path(), params=visitor.params(), headers=visitor.headers())
    assert gone.status_code == 204
    inactive = await visitor.call(client, "POST", "/test", {})
    assert inactive.status_code == 422
    assert inactive.json()["field"] == "regId"
    await asyncio.sleep(0.2)
    assert fake.received_for(visitor.subscription.sub_id) == []


async def test_test_notifications_do_not_use_the_free_plan_quota(
    api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db, plan="free")
    visitors = [await new_visitor(api.client, tenant, fake) for _ in range(11)]
    statuses = [(await v.call(api.client, "POST", "/test", {})).status_code for v in visitors]
    assert statuses == [202] * 11
    # The app's own 10 API campaigns a day are all still there.
    body = {"payload": {"message": "m", "redirect_url": "https://example.com/"}}
    auth = (tenant.app_key, tenant.app_secret)
    answers = [(await api.client.post("/api/v3/push", json=body, auth=auth)).status_code for _ in range(11)]
    assert answers == [200] * 10 + [429]

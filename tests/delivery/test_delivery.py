"""Delivery end to end inside one process: API -> scheduler -> fan-out -> worker -> fake push service."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

from clarion.subscriber.proof import AUTH_HEADER
from tests.conftest import Api
from tests.fakes.push_service import FakePushService, Hang, Respond
from tests.helpers import create_app, push, stats, subscribe, update_app, wait_for_status


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


async def test_campaign_reaches_every_subscriber_decrypted(api: Api, fake: FakePushService) -> None:
    keys = await create_app(api.settings)
    subs = [await subscribe(api.client, keys, fake) for _ in range(3)]
    campaign_id = await push(
        api.client,
        keys,
        ttl=600,
        push_tag="news",
        payload={
            "message": "Body ✓",
            "title": "Headline",
            "icon": "https://example.com/i.png",
            "redirect_url": "https://example.com/story",
            "buttons": [{"title": "Read", "url": "https://example.com/read"}],
        },
    )
    await asyncio.to_thread(fake.wait_for, 3, 10)
    final = await wait_for_status(api.client, keys, campaign_id, "SENT")
    assert final == {"status": "SENT", "send": 3, "received": 0, "clicked": 0, "closed": 0}
    expected = {
        "campaign_id": campaign_id,
        "title": "Headline",
        "message": "Body ✓",
        "icon": "https://example.com/i.png",
        "image": None,
        "redirect_url": "https://example.com/story",
        "buttons": [{"title": "Read", "url": "https://example.com/read"}],
        "display_time": 60,
        "tag": "news",
    }
    for _reg_id, sub in subs:
        [message] = fake.received_for(sub.sub_id)
        assert json.loads(message.payload) == expected
        assert int(message.headers["ttl"]) in range(590, 601)
        assert message.headers["urgency"] == "normal"
        assert message.headers["topic"] == "news"
        assert message.vapid_claims["sub"] == api.settings.vapid_subject
    assert fake.errors == []


async def test_vapid_subject_is_the_apps_own_then_its_https_site_then_the_servers(
    api: Api, fake: FakePushService
) -> None:
    """Apple refuses a placeholder subject (403 BadJwtToken): each app may give its own contact."""
    keys = await create_app(api.settings)
    _reg_id, sub = await subscribe(api.client, keys, fake)
    subjects = []
    for change in (
        {},
        {"site_url": "http://news.example.com"},  # not https: not a contact a service may use
        {"site_url": "https://news.example.com"},
        {"vapid_subject": "mailto:push@news.example.com"},
        {"vapid_subject": ""},
    ):
        await update_app(api.settings, keys.app_key, **change)
        campaign_id = await push(api.client, keys)
        await wait_for_status(api.client, keys, campaign_id, "SENT")
        subjects.append(fake.received_for(sub.sub_id)[-1].vapid_claims["sub"])
    assert subjects == [
        api.settings.vapid_subject,
        api.settings.vapid_subject,
        "https://news.example.com",
        "mailto:push@news.example.com",
        "https://news.example.com",
    ]


async def test_gone_subscribers_are_deactivated_and_not_retried(api: Api, fake: FakePushService) -> None:
    keys = await create_app(api.settings)
    gone_410 = await subscribe(api.client, keys, fake)
    gone_404 = await subscribe(api.client, keys, fake)
    alive = await subscribe(api.client, keys, fake)
    fake.script(gone_410[1].sub_id, [Respond(410)])
    fake.script(gone_404[1].sub_id, [Respond(404)])
    campaign_id = await push(api.client, keys)
    assert (await wait_for_status(api.client, keys, campaign_id, "SENT"))["send"] == 1
    for reg_id, _sub in (gone_410, gone_404):
        answer = await api.client.get("/api/v3/alias", params={"regId": reg_id}, auth=keys.auth)
        assert answer.json() == {"regIdExists": "true", "aliasExists": "false", "isActiveFollower": "false"}
    pushes = [r for r in fake.requests if r.method == "POST"]
    assert len(pushes) == 3  # one attempt each: gone is never retried
    # A second campaign skips the deactivated subscribers altogether.
    second = await push(api.client, keys)
    assert (await wait_for_status(api.client, keys, second, "SENT"))["send"] == 1
    assert len(fake.received_for(alive[1].sub_id)) == 2


async def test_transient_failures_are_retried_honouring_retry_after(api: Api, fake: FakePushService) -> None:
    keys = await create_app(api.settings)
    _reg, sub = await subscribe(api.client, keys, fake)
    fake.script(sub.sub_id, [Respond(429, retry_after="1"), Respond(500), Respond(503)])
    started = time.monotonic()
    campaign_id = await push(api.client, keys)
    final = await wait_for_status(api.client, keys, campaign_id, "SENT", timeout_s=15)
    assert final["send"] == 1
    assert time.monotonic() - started >= 1.0  # the Retry-After of 1 s was waited out
    assert len([r for r in fake.requests if r.method == "POST"]) == 4


async def test_retries_stop_at_the_ttl(api: Api, fake: FakePushService) -> None:
    keys = await create_app(api.settings)
    _reg, sub = await subscribe(api.client, keys, fake)
    fake.script(sub.sub_id, [Respond(429, retry_after="30")])
    campaign_id = await push(api.client, keys, ttl=5)
    final = await wait_for_status(api.client, keys, campaign_id, "SENT")
    assert final == {"status": "SENT", "send": 0, "received": 0, "clicked": 0, "closed": 0}
    assert len([r for r in fake.requests if r.method == "POST"]) == 1


async def test_other_client_errors_are_rejected_without_retry(api: Api, fake: FakePushService) -> None:
    keys = await create_app(api.settings)
    _reg, sub = await subscribe(api.client, keys, fake)
    fake.script(sub.sub_id, [Respond(400), Respond(301, location="http://127.0.0.1:9/elsewhere")])
    campaign_id = await push(api.client, keys)
    assert (await wait_for_status(api.client, keys, campaign_id, "SENT"))["send"] == 0
    assert len([r for r in fake.requests if r.method == "POST"]) == 1


async def test_a_hanging_push_service_times_out_and_is_retried(api: Api, fake: FakePushService) -> None:
    keys = await create_app(api.settings)
    _reg, sub = await subscribe(api.client, keys, fake)
    fake.script(sub.sub_id, [Hang()])
    campaign_id = await push(api.client, keys)
    final = await wait_for_status(api.client, keys, campaign_id, "SENT", timeout_s=15)
    assert final["send"] == 1
    assert len(fake.received_for(sub.sub_id)) == 1


async def test_scheduled_campaign_waits_for_its_send_date(api: Api, fake: FakePushService) -> None:
    keys = await create_app(api.settings)
    _reg, _sub = await subscribe(api.client, keys, fake)
    send_at_ms = int((time.time() + 1.5) * 1000)
    campaign_id = await push(api.client, keys, send_date=send_at_ms)
    assert (await stats(api.client, keys, campaign_id))["status"] == "SCHEDULED"
    await asyncio.to_thread(fake.wait_for, 1, 10)
    arrived_ms = time.time() * 1000
    assert send_at_ms <= arrived_ms <= send_at_ms + 1000
    assert (await wait_for_status(api.client, keys, campaign_id, "SENT"))["send"] == 1


async def test_events_count_into_statistics(api: Api, fake: FakePushService) -> None:
    keys = await create_app(api.settings)
    reg_id, sub = await subscribe(api.client, keys, fake)
    campaign_id = await push(api.client, keys)
    await wait_for_status(api.client, keys, campaign_id, "SENT")
    held = {AUTH_HEADER: sub.auth}  # the subscription's proof
    for kind in ("received", "received", "clicked", "closed"):
        body = {"app_key": keys.app_key, "regId": reg_id, "campaign_id": campaign_id, "type": kind}
        assert (await api.client.post("/sdk/v1/events", json=body, headers=held)).status_code == 204
    final = await stats(api.client, keys, campaign_id)
    assert final == {"status": "SENT", "send": 1, "received": 1, "clicked": 1, "closed": 1}

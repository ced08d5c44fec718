"""GET /api/v3/messages/{id}: the documented statistics body and errors, and audiences as delivered."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from clarion.campaign import payload as payloads
from clarion.campaign.schemas import Button, Content
from clarion.db import Database
from tests.app_tenant.factory import (
    Tenant,
    add_tags,
    new_app,
    new_segment,
    proof,
    push,
    stats,
    vendor_error,
    wait_for_stats,
    web_body,
)
from tests.conftest import Api
from tests.fakes.push_service import FakePushService, Subscription

NO_MESSAGE = {
    "httpStatus": "UNPROCESSABLE_ENTITY",
    "error": "Incomplete by wrong param(s)!",
    "errorDescription": "There is no message with this id!",
}


def counts(status: str, send: int = 0) -> dict[str, Any]:
    return {"status": status, "send": send, "received": 0, "clicked": 0, "closed": 0}


async def test_message_errors_and_scheduled_statistics(quiet_api: Api, db: Database) -> None:
    client = quiet_api.client
    tenant, other = await new_app(db), await new_app(db, name="other")
    later = str(time.time_ns() // 1_000_000 + 3_600_000)
    scheduled = (await push(client, tenant, send_date=later)).json()["id"]
    foreign = (await push(client, other)).json()["id"]

    assert await stats(client, tenant, scheduled) == counts("SCHEDULED")
    for campaign_id in [
        "1603861504654835713",
        "424242",
        "0",
        foreign,
        "abc",
        "1.5",
        "-1",
        "²",
        "٣",
        "9" * 40,
        "%20",
    ]:
        answer = await client.get(f"/api/v3/messages/{campaign_id}", auth=tenant.auth)
        assert (answer.status_code, answer.json()) == (422, NO_MESSAGE), campaign_id
    missing = vendor_error('Required parameter "campaignID" is not present', "campaignID", "BAD_REQUEST")
    for url in ("/api/v3/messages/", "/api/v3/messages"):
        answer = await client.get(url, auth=tenant.auth)
        assert (answer.status_code, answer.json()) == (400, missing), url
    assert await stats(client, other, foreign) == counts("SCHEDULED")


async def _subscriber(api: Api, tenant: Tenant, fake: FakePushService) -> tuple[str, Subscription]:
    sub = fake.new_subscription(application_server_key=tenant.vapid_public_key)
    answer = await api.client.post("/sdk/v1/subscribers", json=web_body(tenant.app_key, sub.to_json()))
    assert answer.status_code == 201, answer.text
    return answer.json()["regId"], sub


async def _received(fake: FakePushService, sub: Subscription, campaign_id: str) -> dict[str, Any]:
    for _ in range(200):
        for message in fake.received_for(sub.sub_id):
            payload: dict[str, Any] = json.loads(message.payload)
            if payload.get("campaign_id") == campaign_id:
                return payload
        await asyncio.sleep(0.025)
    raise AssertionError(f"campaign {campaign_id} never reached {sub.sub_id}")


async def test_audiences_as_delivered_and_counted(api: Api, db: Database, fake: FakePushService) -> None:
    client = api.client
    tenant = await new_app(db, plan="unlimited")
    (news, news_sub), (shouty, _), (plain, plain_sub), (gone, gone_sub) = [
        await _subscriber(api, tenant, fake) for _ in range(4)
    ]
    # The first spelling of each tag is kept ("News", "Sport"); the others are the same tag.
    for reg_id, tag in [(news, "News"), (shouty, "NEWS"), (gone, "news"), (plain, "Sport")]:
        answer = await client.post("/api/v3/tag", params={"regId": reg_id, "name": tag}, auth=tenant.auth)
        assert answer.status_code == 200
    answer = await client.post("/api/v3/alias", params={"regId": plain, "name": "al"}, auth=tenant.auth)
    assert answer.status_code == 200
    answer = await client.delete(
        f"/sdk/v1/subscribers/{gone}", params={"app_key": tenant.app_key}, headers=proof(gone_sub.auth)
    )
    assert answer.status_code == 204
    await add_tags(db, tenant, ["unused"])
    no_news = await new_segment(db, tenant, "No news", [("AND_NOT", "news")])

    # (request, how many receive it, whether `plain` is one of them)
    audiences: list[tuple[dict[str, Any], int, bool]] = [
        ({}, 3, True),  # everyone active
        ({"audience": {"tags": ["news"]}}, 2, False),
        ({"audience": {"tags": ["news", "NEWS", "sport"]}}, 3, True),
        ({"audience": {"aliases": ["al", "nobody"]}}, 1, True),
        ({"audience": {"tokens": [news, plain, gone, "ghost"]}}, 2, True),
        ({"audience": {"tags_segment": [{"association": "AND_NOT", "name": "nEwS"}]}}, 1, True),
        ({"audience": {"tags_segment": [{"association": "AND", "name": "unused"}]}}, 0, False),
        ({"audience": {"tags_segment": [{"association": "OR_NOT", "name": "unused"}]}}, 3, True),
        (
            {
                "audience": {
                    "tags_segment": [
                        {"association": "AND", "name": "news"},
                        {"association": "OR_NOT", "name": "unused"},
                    ]
                }
            },
            3,
            True,
        ),
        (
            {
                "audience": {
                    "tags_segment": [
                        {"association": "OR", "name": "sport"},
                        {"association": "AND_NOT", "name": "news"},
                    ]
                }
            },
            1,
            True,
        ),
        (
            {
                "audience": {
                    "tags_segment": [
                        {"association": "AND", "name": "news"},
                        {"association": "OR", "name": "sport"},
                    ]
                }
            },
            3,
            True,
        ),
        ({"segments": ["No news"]}, 1, True),
        ({"segments": [no_news]}, 1, True),
        ({"segments": [str(no_news)]}, 1, True),
        ({"audience": {"tokens": ["nobody"]}}, 0, False),
    ]
    created = []
    for audience, _, _ in audiences:
        answer = await push(client, tenant, **audience)
        assert answer.status_code == 200, (audience, answer.text)
        campaign_id = answer.json()["id"]
        assert (await stats(client, tenant, campaign_id))["status"] in ("SCHEDULED", "SENDING", "SENT")
        created.append(campaign_id)
    for campaign_id, (audience, send, _) in zip(created, audiences, strict=True):
        assert await wait_for_stats(client, tenant, campaign_id, counts("SENT", send)) == counts(
            "SENT", send
        ), audience

    # What the subscriber's service worker decrypts: the campaign as sent; nothing for the departed.
    payload = await _received(fake, news_sub, created[0])
    assert {
        key: payload[key] for key in ("campaign_id", "title", "message", "redirect_url", "display_time")
    } == {
        "campaign_id": created[0],
        "title": "Title",
        "message": "Hello",
        "redirect_url": "https://example.com/news",
        "display_time": 60,
    }
    assert fake.received_for(gone_sub.sub_id) == []
    reached_plain = {json.loads(m.payload)["campaign_id"] for m in fake.received_for(plain_sub.sub_id)}
    assert reached_plain == {
        cid for cid, (_, _, plain_in) in zip(created, audiences, strict=True) if plain_in
    }


async def test_largest_payload_is_delivered(api: Api, db: Database, fake: FakePushService) -> None:
    """A notification right at the API's size limit still fits one Web Push message (RFC 8030 §7.2)."""
    tenant = await new_app(db)
    reg_id, sub = await _subscriber(api, tenant, fake)
    button = {"title": "ü" * 48, "url": "https://example.com/b"}
    base = {"title": "Ω" * 700, "redirect_url": "https://example.com/r", "icon": "https://example.com/i.png"}
    content = Content(message="", buttons=(Button(**button),), **base)
    room = payloads.MAX_PAYLOAD_BYTES - len(
        payloads.encode(payloads.build(payloads.WIDEST_CAMPAIGN_ID, content, 60, None))
    )
    message = "€" * (room // 3) + "a" * (room % 3)
    body = {**base, "message": message, "buttons": [button]}
    answer = await push(api.client, tenant, audience={"tokens": [reg_id]}, payload=body)
    assert answer.status_code == 200, answer.text
    campaign_id = answer.json()["id"]
    assert await wait_for_stats(api.client, tenant, campaign_id, counts("SENT", 1)) == counts("SENT", 1)
    payload = await _received(fake, sub, campaign_id)
    assert (payload["message"], payload["title"], payload["buttons"]) == (message, base["title"], [button])

"""Updating and retracting a sent campaign over real HTTP: what the local push service receives (the
Topic header, the second and third payloads, decrypted), who receives it, and the campaign's record."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from clarion.provider.webpush import push_topic
from tests.fakes.push_service import FakePushService, Received, Respond
from tests.v1.conftest import V1, basic, subscribe, wait_for

PAYLOAD = {"title": "Breaking", "message": "Hello", "redirect_url": "https://example.com/news"}
NEW = {
    "title": "Corrected",
    "message": "Hello again",
    "redirect_url": "https://example.com/news/2",
    "buttons": [{"title": "Read", "url": "https://example.com/read"}],
}


def messages(fake: FakePushService, reg_sub: str, count: int, timeout_s: float = 30) -> list[Received]:
    deadline = time.monotonic() + timeout_s
    while len(fake.received_for(reg_sub)) < count:
        assert time.monotonic() < deadline, f"{count} messages for {reg_sub}: {fake.received_for(reg_sub)}"
        time.sleep(0.05)
    return fake.received_for(reg_sub)


def web_subscriber(v1: V1, fake: FakePushService, app: dict[str, Any], *script: Respond) -> str:
    """A Web Push subscriber of the app; its subscription's id at the fake push service."""
    sub = fake.new_subscription(application_server_key=app["vapid_public_key"])
    if script:
        fake.script(sub.sub_id, list(script))
    body = {"app_key": app["app_key"], "platform": "web", "subscription": sub.to_json()}
    answer = httpx.post(f"{v1.server.url}/sdk/v1/subscribers", json=body, timeout=10)
    assert answer.status_code == 201, answer.text
    return sub.sub_id


def test_an_update_and_a_retraction_reach_whom_the_campaign_reached(v1: V1, fake: FakePushService) -> None:
    app = v1.new_app()
    reached = web_subscriber(v1, fake, app)
    # Refused once (400): the campaign did not reach it, so neither do its follow-ups.
    refused = web_subscriber(v1, fake, app, Respond(400), Respond(201), Respond(201))
    with v1.client(basic(app)) as own:
        base = f"/apps/{app['app_key']}/campaigns"
        campaign_id = own.post(base, json={"payload": PAYLOAD}).json()["campaign_id"]
        wait_for(own, f"{base}/{campaign_id}", "sent")
        late = web_subscriber(v1, fake, app)  # subscribed after the send: no recipient of its follow-ups
        updated = own.post(f"{base}/{campaign_id}/update", json={"payload": NEW})
        assert updated.status_code == 202, updated.text
        update_id = updated.json()["campaign_id"]
        wait_for(own, f"{base}/{update_id}", "sent")
        retracted = own.post(f"{base}/{campaign_id}/retract")
        assert retracted.status_code == 202, retracted.text
        retract_id = retracted.json()["campaign_id"]
        wait_for(own, f"{base}/{retract_id}", "sent")
        record = own.get(f"{base}/{campaign_id}/follow-ups").json()

    tag = f"clarion-{campaign_id}"
    first, second, third = messages(fake, reached, 3)
    assert json.loads(second.payload) == {
        "campaign_id": campaign_id,
        "title": "Corrected",
        "message": "Hello again",
        "icon": None,
        "image": None,
        "redirect_url": "https://example.com/news/2",
        "buttons": [{"title": "Read", "url": "https://example.com/read"}],
        "display_time": 60,
        "tag": tag,
    }
    assert json.loads(third.payload) == {"campaign_id": campaign_id, "retract": True, "tag": tag}
    # One Topic for the campaign and its follow-ups: a push service replaces one still waiting.
    assert [m.headers["topic"] for m in (first, second, third)] == [push_topic(tag)] * 3
    assert json.loads(first.payload)["tag"] is None  # the service worker shows it under `tag` all the same
    assert (fake.received_for(refused), fake.received_for(late)) == ([], [])

    def shown(kind: str, row_id: str, title: str, message: str, url: str) -> dict[str, Any]:
        return {
            "campaign_id": row_id,
            "follows": campaign_id,
            "kind": kind,
            "status": "sent",
            "title": title,
            "message": message,
            "redirect_url": url,
            "sent": 1,
        }

    items = [{k: v for k, v in item.items() if k != "created_at"} for item in record["items"]]
    assert items == [
        shown("update", update_id, "Corrected", "Hello again", "https://example.com/news/2"),
        shown("retract", retract_id, "Breaking", "Hello", "https://example.com/news"),
    ]
    assert updated.json() | {"created_at": None, "status": None, "sent": None} == shown(
        "update", update_id, "Corrected", "Hello again", "https://example.com/news/2"
    ) | {"created_at": None, "status": None, "sent": None}


def test_what_cannot_be_updated_or_retracted(v1: V1, fake: FakePushService) -> None:
    app = v1.new_app()
    subscribe(v1, fake, app)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with v1.client(basic(app)) as own:
        base = f"/apps/{app['app_key']}/campaigns"
        scheduled = own.post(base, json={"payload": PAYLOAD, "send_at": later}).json()["campaign_id"]
        not_sent = own.post(f"{base}/{scheduled}/retract")
        missing = own.post(f"{base}/123/update", json={"payload": NEW})
        sent = own.post(base, json={"payload": PAYLOAD}).json()["campaign_id"]
        wait_for(own, f"{base}/{sent}", "sent")
        no_message = own.post(f"{base}/{sent}/update", json={"payload": {"redirect_url": "https://e.com/"}})
        bad_url = own.post(f"{base}/{sent}/update", json={"payload": {**NEW, "redirect_url": "ftp://e.com/"}})
        follow = own.post(f"{base}/{sent}/retract").json()["campaign_id"]
        of_follow = own.post(f"{base}/{follow}/update", json={"payload": NEW})
    assert (not_sent.status_code, not_sent.json()) == (
        409,
        {
            "error": "campaign_not_sent",
            "message": "This campaign has sent nothing yet: there is nothing to update or retract",
        },
    )
    assert (missing.status_code, missing.json()["error"], missing.json()["field"]) == (
        404,
        "not_found",
        "campaign_id",
    )
    assert (no_message.status_code, no_message.json()["error"], no_message.json()["field"]) == (
        400,
        "missing_parameter",
        "payload.message",
    )
    assert (bad_url.status_code, bad_url.json()["field"]) == (422, "payload.redirect_url")
    assert (of_follow.status_code, of_follow.json()) == (
        422,
        {
            "error": "invalid_field",
            "message": (
                "campaign_id: this is an update or retraction; update or retract the campaign it follows"
            ),
            "field": "campaign_id",
        },
    )


def test_on_android_an_update_replaces_by_tag_and_a_retraction_is_a_data_message(v1: V1) -> None:
    app = v1.new_app()
    account = v1.fcm.new_service_account("follow")
    device = v1.fcm.new_token("follow")
    registered = httpx.post(
        f"{v1.server.url}/sdk/v1/subscribers",
        json={"app_key": app["app_key"], "platform": "android", "token": device},
        timeout=10,
    )
    assert registered.status_code == 201, registered.text
    base = f"/apps/{app['app_key']}"
    with v1.client(basic(app)) as own:
        own.put(f"{base}/credentials/fcm", json={"service_account": account})
        body = {"payload": PAYLOAD, "push_tag": "story-1"}
        campaign_id = own.post(f"{base}/campaigns", json=body).json()["campaign_id"]
        wait_for(own, f"{base}/campaigns/{campaign_id}", "sent")
        update_id = own.post(f"{base}/campaigns/{campaign_id}/update", json={"payload": NEW}).json()
        wait_for(own, f"{base}/campaigns/{update_id['campaign_id']}", "sent")
        retract_id = own.post(f"{base}/campaigns/{campaign_id}/retract").json()
        wait_for(own, f"{base}/campaigns/{retract_id['campaign_id']}", "sent")
    original, update, retraction = (r.message for r in v1.fcm.received_for(device))
    assert (original["android"]["collapse_key"], original["android"]["notification"]["tag"]) == (
        "story-1",
        "story-1",
    )
    assert (update["android"]["collapse_key"], update["android"]["notification"]["tag"]) == (
        "story-1",
        "story-1",
    )
    assert update["notification"] == {"title": "Corrected", "body": "Hello again"}
    assert (update["data"]["campaign_id"], update["data"]["url"]) == (
        campaign_id,
        "https://example.com/news/2",
    )
    assert ("notification" in retraction, "notification" in retraction["android"]) == (False, False)
    assert {k: retraction["data"][k] for k in ("clarion_retract", "tag")} == {
        "clarion_retract": campaign_id,
        "tag": "story-1",
    }

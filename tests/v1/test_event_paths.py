"""Events the features record, each read back whole through the public feed (`GET /v1/apps/{app}/events`)
of a real `clarion serve`: engagement reported by the SDK, a browser's new push subscription, native
credentials refused by the push service, a campaign cancelled before it started (docs/webhooks.md)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from clarion.subscriber.proof import AUTH_HEADER
from tests.fakes.push_service import FakePushService, Subscription
from tests.v1.conftest import V1, basic, wait_for

PAYLOAD = {"title": "Breaking", "message": "Hello", "redirect_url": "https://example.com/news"}
EVENT_ID = re.compile(r"[0-9]+-[0-9]+")


def _feed_on(v1: V1, app: dict[str, Any]) -> None:
    with v1.client(basic(app)) as own:
        switched = own.put(f"/apps/{app['app_key']}/events/feed", json={"enabled": True})
        assert (switched.status_code, switched.json()) == (200, {"enabled": True})


def _web_subscriber(v1: V1, fake: FakePushService, app: dict[str, Any]) -> tuple[str, Subscription]:
    sub = fake.new_subscription(application_server_key=app["vapid_public_key"])
    body = {"app_key": app["app_key"], "platform": "web", "subscription": sub.to_json()}
    answer = httpx.post(f"{v1.server.url}/sdk/v1/subscribers", json=body, timeout=10)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["regId"]), sub


def _events(v1: V1, app: dict[str, Any], prefix: str, count: int, since: datetime) -> list[dict[str, Any]]:
    """The feed's events whose type starts with `prefix`, once `count` of them are there (the feed
    leaves the newest second unread), each checked whole: exactly its four fields, an id of the
    documented form and a timestamp of this test's time; as (type, data) pairs, oldest first."""
    deadline = time.monotonic() + 30
    with v1.client(basic(app)) as own:
        while True:
            answer = own.get(f"/apps/{app['app_key']}/events", params={"limit": 1000})
            assert answer.status_code == 200, answer.text
            found = [e for e in answer.json()["items"] if e["type"].startswith(prefix)]
            if len(found) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    for event in found:
        assert set(event) == {"id", "type", "timestamp", "data"}, event
        assert EVENT_ID.fullmatch(event["id"]), event
        at = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        assert event["timestamp"].endswith("Z"), event
        assert since <= at <= datetime.now(UTC), event
    return [{"type": e["type"], "data": e["data"]} for e in found]


def _engage(v1: V1, app: dict[str, Any], reg_id: str, sub: Subscription, campaign_id: str, kind: str) -> None:
    body = {"app_key": app["app_key"], "regId": reg_id, "campaign_id": campaign_id, "type": kind}
    answer = httpx.post(
        f"{v1.server.url}/sdk/v1/events", json=body, headers={AUTH_HEADER: sub.auth}, timeout=10
    )
    assert answer.status_code == 204, answer.text


def test_engagement_reported_by_the_sdk_is_an_event_once_per_type(v1: V1, fake: FakePushService) -> None:
    since = datetime.now(UTC)
    app = v1.new_app("engagement events")
    _feed_on(v1, app)
    reg_id, sub = _web_subscriber(v1, fake, app)
    base = f"/apps/{app['app_key']}/campaigns"
    with v1.client(basic(app)) as own:
        campaign_id = own.post(base, json={"payload": PAYLOAD}).json()["campaign_id"]
        wait_for(own, f"{base}/{campaign_id}", "sent")
    for kind in ("received", "clicked", "clicked", "closed"):  # a repeated report is not a new event
        _engage(v1, app, reg_id, sub, campaign_id, kind)
    data = {"campaign_id": campaign_id, "subscriber_id": reg_id, "platform": "web"}
    assert _events(v1, app, "engagement.", 3, since) == [
        {"type": "engagement.received", "data": data},
        {"type": "engagement.clicked", "data": data},
        {"type": "engagement.closed", "data": data},
    ]


def test_a_browser_moving_to_a_new_subscription_is_a_token_replaced_event(
    v1: V1, fake: FakePushService
) -> None:
    since = datetime.now(UTC)
    app = v1.new_app("token events")
    _feed_on(v1, app)
    reg_id, sub = _web_subscriber(v1, fake, app)
    renewed = fake.new_subscription(application_server_key=app["vapid_public_key"])
    moved = httpx.post(
        f"{v1.server.url}/sdk/v1/subscribers/{reg_id}/resubscribe",
        params={"app_key": app["app_key"]},
        json={"subscription": renewed.to_json()},
        headers={AUTH_HEADER: sub.auth},
        timeout=10,
    )
    assert moved.status_code == 200, moved.text
    assert _events(v1, app, "subscriber.", 2, since) == [
        {"type": "subscriber.created", "data": {"subscriber_id": reg_id, "platform": "web"}},
        {"type": "subscriber.token_replaced", "data": {"subscriber_id": reg_id, "platform": "web"}},
    ]


def test_native_credentials_refused_by_the_push_service_are_an_event(v1: V1) -> None:
    since = datetime.now(UTC)
    app = v1.new_app("credential events")
    _feed_on(v1, app)
    registered = httpx.post(
        f"{v1.server.url}/sdk/v1/subscribers",
        json={"app_key": app["app_key"], "platform": "android", "token": v1.fcm.new_token("refused")},
        timeout=10,
    )
    assert registered.status_code == 201, registered.text
    base = f"/apps/{app['app_key']}"
    with v1.client(basic(app)) as own:
        untrusted = v1.fcm.new_service_account("refused", trusted=False)
        assert own.put(f"{base}/credentials/fcm", json={"service_account": untrusted}).status_code == 200
        campaign_id = own.post(f"{base}/campaigns", json={"payload": PAYLOAD}).json()["campaign_id"]
        wait_for(own, f"{base}/campaigns/{campaign_id}", "sent")
        reason = own.get(f"{base}/credentials").json()["items"][0]["last_failure"]
    assert reason.startswith("channel: token endpoint")
    assert _events(v1, app, "credentials.", 1, since) == [
        {"type": "credentials.rejected", "data": {"provider": "fcm", "reason": reason}}
    ]


def test_a_campaign_cancelled_before_it_started_is_one_event(v1: V1, fake: FakePushService) -> None:
    since = datetime.now(UTC)
    app = v1.new_app("cancel events")
    _feed_on(v1, app)
    _web_subscriber(v1, fake, app)
    base = f"/apps/{app['app_key']}/campaigns"
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with v1.client(basic(app)) as own:
        campaign_id = own.post(base, json={"payload": PAYLOAD, "send_at": later}).json()["campaign_id"]
        cancelled = own.post(f"{base}/{campaign_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
    # Nothing started or finished: the cancel is the campaign's only event.
    assert _events(v1, app, "campaign.", 1, since) == [
        {"type": "campaign.cancelled", "data": {"campaign_id": campaign_id}}
    ]

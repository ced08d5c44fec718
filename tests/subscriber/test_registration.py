"""POST /sdk/v1/subscribers and DELETE /sdk/v1/subscribers/{regId}: the subscriber API."""

from __future__ import annotations

import base64
import re
from typing import Any

from clarion.db import Database
from tests.app_tenant.factory import native_error, new_app, proof, subscribe_with_proof, web_body
from tests.conftest import Api
from tests.fakes.push_service import FakePushService

# At least 128 random bits in an URL-safe alphabet: 22 base64url characters carry 132 bits.
REG_ID = re.compile(r"[A-Za-z0-9_-]{22,64}")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def invalid(message: str, field: str) -> dict[str, Any]:
    return native_error("invalid_field", message, field)


async def alias_state(api: Api, auth: tuple[str, str], reg_id: str) -> dict[str, str]:
    answer = await api.client.get("/api/v3/alias", params={"regId": reg_id}, auth=auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, str] = answer.json()
    return body


async def test_web_registration_is_idempotent_and_reactivates(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    sub = fake.new_subscription()
    # Exactly what a browser's PushSubscription.toJSON() gives, expirationTime included.
    body = web_body(tenant.app_key, {**sub.to_json(), "expirationTime": None})

    first = await quiet_api.client.post("/sdk/v1/subscribers", json=body)
    assert first.status_code == 201
    reg_id = first.json()["regId"]
    assert first.json() == {"regId": reg_id}
    assert REG_ID.fullmatch(reg_id)

    again = await quiet_api.client.post("/sdk/v1/subscribers", json=body)
    assert (again.status_code, again.json()) == (200, {"regId": reg_id})

    gone = await quiet_api.client.delete(
        f"/sdk/v1/subscribers/{reg_id}", params={"app_key": tenant.app_key}, headers=proof(sub.auth)
    )
    assert (gone.status_code, gone.content) == (204, b"")
    expected_inactive = {"regIdExists": "true", "aliasExists": "false", "isActiveFollower": "false"}
    assert await alias_state(quiet_api, tenant.auth, reg_id) == expected_inactive

    # The browser subscribes again (here with rotated keys, proving the registered subscription):
    # same regId, active again.
    rotated = fake.new_subscription()
    renewed = {"endpoint": sub.endpoint, "keys": rotated.to_json()["keys"]}
    back = await quiet_api.client.post(
        "/sdk/v1/subscribers", json=web_body(tenant.app_key, renewed), headers=proof(sub.auth)
    )
    assert (back.status_code, back.json()) == (200, {"regId": reg_id})
    expected_active = {"regIdExists": "true", "aliasExists": "false", "isActiveFollower": "true"}
    assert await alias_state(quiet_api, tenant.auth, reg_id) == expected_active


async def test_reg_ids_are_unguessable_and_per_app(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant, other = await new_app(db), await new_app(db, name="other")
    reg_ids = []
    for _ in range(8):
        sub = fake.new_subscription().to_json()
        answer = await quiet_api.client.post("/sdk/v1/subscribers", json=web_body(tenant.app_key, sub))
        assert answer.status_code == 201
        reg_ids.append(answer.json()["regId"])
    assert all(REG_ID.fullmatch(reg_id) for reg_id in reg_ids), reg_ids
    assert len(set(reg_ids)) == len(reg_ids)
    assert len({reg_id[:8] for reg_id in reg_ids}) == len(reg_ids), (
        "regIds must not share a predictable prefix"
    )

    # The same browser subscribed to another app is another subscriber.
    answer = await quiet_api.client.post("/sdk/v1/subscribers", json=web_body(other.app_key, sub))
    assert answer.status_code == 201
    assert answer.json()["regId"] not in reg_ids


async def test_web_subscription_is_validated_field_by_field(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    sub = fake.new_subscription().to_json()
    endpoint, p256dh, auth = sub["endpoint"], sub["keys"]["p256dh"], sub["keys"]["auth"]
    point = base64.urlsafe_b64decode(p256dh + "==")
    compressed = bytes([2 + (point[-1] & 1)]) + point[1:33]
    off_curve = b"\x04" + b"\x01" * 64

    def with_keys(**keys: str) -> dict[str, Any]:
        return {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth, **keys}}

    def with_endpoint(url: str) -> dict[str, Any]:
        return {"endpoint": url, "keys": {"p256dh": p256dh, "auth": auth}}

    host_refused = "subscription.endpoint host evil.example.com is not a known push service"
    https = "subscription.endpoint must be an https:// URL"
    not_b64 = "subscription.keys.p256dh is not base64url"
    not_point = "subscription.keys.p256dh must be an uncompressed P-256 point"
    cases: list[tuple[dict[str, Any], str, str]] = [
        (with_endpoint("https://evil.example.com/push/1"), host_refused, "subscription.endpoint"),
        (with_endpoint("http://push.example.net/push/1"), https, "subscription.endpoint"),
        (with_endpoint("ftp://127.0.0.1/push/1"), https, "subscription.endpoint"),
        (with_endpoint("push.example.net/push/1"), https, "subscription.endpoint"),
        (
            with_endpoint("https://me:pw@push.example.net/push/1"),
            "subscription.endpoint must not carry credentials",
            "subscription.endpoint",
        ),
        (with_keys(p256dh=b64(point[:-1])), not_point, "subscription.keys.p256dh"),
        (with_keys(p256dh=b64(point + b"\x00")), not_point, "subscription.keys.p256dh"),
        (with_keys(p256dh=b64(compressed)), not_point, "subscription.keys.p256dh"),
        (
            with_keys(p256dh=b64(off_curve)),
            "subscription.keys.p256dh is not a point on P-256",
            "subscription.keys.p256dh",
        ),
        (with_keys(p256dh=p256dh[:40] + "*$" + p256dh[40:]), not_b64, "subscription.keys.p256dh"),
        (with_keys(p256dh=p256dh + "AA"), not_b64, "subscription.keys.p256dh"),
        (with_keys(p256dh="!!!!"), not_b64, "subscription.keys.p256dh"),
        (with_keys(auth=b64(b"x" * 15)), "subscription.keys.auth must be 16 bytes", "subscription.keys.auth"),
        (with_keys(auth=b64(b"x" * 17)), "subscription.keys.auth must be 16 bytes", "subscription.keys.auth"),
        (
            with_keys(auth=auth[:10] + "?" + auth[10:]),
            "subscription.keys.auth is not base64url",
            "subscription.keys.auth",
        ),
        ({"endpoint": endpoint}, "subscription.keys: Field required", "subscription.keys"),
        (
            {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": 16}},
            "subscription.keys.auth: Input should be a valid string",
            "subscription.keys.auth",
        ),
    ]
    for subscription, message, field in cases:
        answer = await quiet_api.client.post(
            "/sdk/v1/subscribers", json=web_body(tenant.app_key, subscription)
        )
        assert (answer.status_code, answer.json()) == (422, invalid(message, field)), subscription

    other_cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        (
            {"app_key": tenant.app_key, "platform": "web"},
            invalid("subscription is required for web", "subscription"),
        ),
        (web_body("nope", sub), invalid("There is no app with app_key: nope", "app_key")),
        (
            {"platform": "web", "subscription": sub},
            native_error("invalid_field", "app_key: Field required", "app_key"),
        ),
        (
            {"app_key": tenant.app_key, "platform": "blackberry", "token": "t"},
            invalid("platform: Input should be 'web', 'android', 'ios', 'adm' or 'wns'", "platform"),
        ),
        (
            {"app_key": tenant.app_key, "subscription": sub},
            invalid("platform: Field required", "platform"),
        ),
    ]
    for body, expected in other_cases:
        answer = await quiet_api.client.post("/sdk/v1/subscribers", json=body)
        assert (answer.status_code, answer.json()) == (422, expected), body

    # The good subscription is still welcome after all that.
    answer = await quiet_api.client.post("/sdk/v1/subscribers", json=web_body(tenant.app_key, sub))
    assert answer.status_code == 201


async def test_bodies_that_are_not_json_objects_are_400(quiet_api: Api, db: Database) -> None:
    not_json = native_error("bad_request", "The request body must be a JSON object", "body")
    for content in (b"", b"   ", b"[]", b"null", b"42", b'"web"'):
        answer = await quiet_api.client.post("/sdk/v1/subscribers", content=content)
        assert (answer.status_code, answer.json()) == (400, not_json), content
    for content in (b"{", b"app_key=x&platform=web", b"\xff\xfe{}"):
        answer = await quiet_api.client.post("/sdk/v1/subscribers", content=content)
        assert answer.status_code == 400, content
        body = answer.json()
        assert body["error"] == "bad_request"
        assert body["field"] == "body"
        assert body["message"].startswith("The request body is not valid JSON")


async def test_native_tokens_and_wns_channel_uris(quiet_api: Api, db: Database) -> None:
    tenant = await new_app(db)
    reg_ids = set()
    for platform, token in [
        ("android", "fcm-registration-token:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"),
        ("ios", "5f1c3a9be5e1a2f7c0d4a8b6e3f2d1c0b9a8e7f6d5c4b3a2f1e0d9c8b7a6f5e4"),
        ("adm", "amzn1.adm-registration.v3.Y29tLmFtYXpvbi5EZXZpY2VNZXNzYWdpbmc"),
        ("wns", "https://push.example.net/?token=AwYAAAD%2bXyz"),
        ("wns", "http://127.0.0.1:9/wns/channel"),
    ]:
        body = {
            "app_key": tenant.app_key,
            "platform": platform,
            "token": token,
            "user_id": "user-7",
            "user_id_hash": tenant.user_id_hash("user-7"),
        }
        first = await quiet_api.client.post("/sdk/v1/subscribers", json=body)
        assert first.status_code == 201, (platform, first.text)
        reg_id = first.json()["regId"]
        assert first.json() == {"regId": reg_id}
        again = await quiet_api.client.post("/sdk/v1/subscribers", json=body)
        assert (again.status_code, again.json()) == (200, {"regId": reg_id})
        reg_ids.add(reg_id)
    assert len(reg_ids) == 5

    refusals = [
        (
            "wns",
            "https://evil.example.com/?token=1",
            "token host evil.example.com is not a known push service",
        ),
        ("wns", "http://push.example.net/?token=1", "token must be an https:// URL"),
        ("wns", "not a channel uri", "token must be an https:// URL"),
    ]
    for platform, token, message in refusals:
        body = {"app_key": tenant.app_key, "platform": platform, "token": token}
        answer = await quiet_api.client.post("/sdk/v1/subscribers", json=body)
        assert (answer.status_code, answer.json()) == (422, invalid(message, "token")), token
    for platform in ("android", "ios", "adm", "wns"):
        answer = await quiet_api.client.post(
            "/sdk/v1/subscribers", json={"app_key": tenant.app_key, "platform": platform}
        )
        expected = invalid(f"token is required for {platform}", "token")
        assert (answer.status_code, answer.json()) == (422, expected)
    answer = await quiet_api.client.post(
        "/sdk/v1/subscribers", json={"app_key": tenant.app_key, "platform": "ios", "token": ""}
    )
    assert (answer.status_code, answer.json()) == (
        422,
        invalid("token: String should have at least 1 character", "token"),
    )


async def test_unsubscribe(quiet_api: Api, db: Database, fake: FakePushService) -> None:
    tenant, other = await new_app(db), await new_app(db, name="other")
    reg_id, held = await subscribe_with_proof(quiet_api.client, tenant, fake)
    no_such = native_error("not_found", "There is no subscriber with this regId", "regId")

    answer = await quiet_api.client.delete(
        "/sdk/v1/subscribers/unknown-reg-id", params={"app_key": tenant.app_key}, headers=held
    )
    assert (answer.status_code, answer.json()) == (404, no_such)
    # Another app cannot unsubscribe this app's subscriber, nor learn that it exists.
    answer = await quiet_api.client.delete(
        f"/sdk/v1/subscribers/{reg_id}", params={"app_key": other.app_key}, headers=held
    )
    assert (answer.status_code, answer.json()) == (404, no_such)
    answer = await quiet_api.client.delete(
        f"/sdk/v1/subscribers/{reg_id}", params={"app_key": "nope"}, headers=held
    )
    assert (answer.status_code, answer.json()) == (
        422,
        invalid("There is no app with app_key: nope", "app_key"),
    )
    answer = await quiet_api.client.delete(f"/sdk/v1/subscribers/{reg_id}", headers=held)
    assert (answer.status_code, answer.json()) == (
        400,
        native_error("missing_parameter", "app_key is required", "app_key"),
    )
    assert (await alias_state(quiet_api, tenant.auth, reg_id))["isActiveFollower"] == "true"

    for _ in range(2):  # unsubscribing twice is harmless
        answer = await quiet_api.client.delete(
            f"/sdk/v1/subscribers/{reg_id}", params={"app_key": tenant.app_key}, headers=held
        )
        assert (answer.status_code, answer.content) == (204, b"")
    assert (await alias_state(quiet_api, tenant.auth, reg_id))["isActiveFollower"] == "false"

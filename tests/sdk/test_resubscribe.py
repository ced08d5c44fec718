"""POST /sdk/v1/subscribers/{regId}/resubscribe: the service worker's answer to pushsubscriptionchange."""

from __future__ import annotations

from clarion.db import Database
from tests.app_tenant.factory import native_error, new_app, web_body
from tests.conftest import Api
from tests.fakes.push_service import FakePushService
from tests.sdk.test_self_service import REFUSED, alias_state, view
from tests.sdk.visitor import Visitor, new_visitor


async def test_the_regid_moves_to_the_new_subscription_with_alias_and_tags(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    visitor = await new_visitor(quiet_api.client, tenant, fake)
    client = quiet_api.client
    await visitor.call(client, "PUT", "/alias", {"alias": "kept"})
    await visitor.call(client, "PUT", "/tags", {"tags": ["news", "sport"]})

    renewed = fake.new_subscription(application_server_key=tenant.vapid_public_key)
    # Exactly what PushSubscription.toJSON() gives, expirationTime included.
    body = {"subscription": {**renewed.to_json(), "expirationTime": None}}
    answer = await visitor.call(client, "POST", "/resubscribe", body)
    assert (answer.status_code, answer.json()) == (200, view(visitor, "kept", ["news", "sport"]))

    # From now on the new subscription's secret is the one that counts.
    moved = Visitor(tenant, visitor.reg_id, renewed)
    assert (await moved.call(client, "GET")).json() == view(visitor, "kept", ["news", "sport"])
    old = await visitor.call(client, "GET")
    assert (old.status_code, old.json()) == (401, REFUSED)

    # The new endpoint is this regId's address; the old one is free (registering it is a newcomer).
    again = await client.post("/sdk/v1/subscribers", json=web_body(tenant.app_key, renewed.to_json()))
    assert (again.status_code, again.json()) == (200, {"regId": visitor.reg_id})
    old_endpoint = await client.post(
        "/sdk/v1/subscribers", json=web_body(tenant.app_key, visitor.subscription.to_json())
    )
    assert old_endpoint.status_code == 201
    assert old_endpoint.json()["regId"] != visitor.reg_id


async def test_resubscribe_reactivates_and_accepts_rotated_keys(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    visitor = await new_visitor(quiet_api.client, tenant, fake)
    client = quiet_api.client
    gone = await client.delete(visitor.path(), params=visitor.params(), headers=visitor.headers())
    assert gone.status_code == 204

    rotated = fake.new_subscription()
    same_endpoint = {"endpoint": visitor.subscription.endpoint, "keys": rotated.to_json()["keys"]}
    answer = await visitor.call(client, "POST", "/resubscribe", {"subscription": same_endpoint})
    assert (answer.status_code, answer.json()) == (200, view(visitor))
    assert (await alias_state(quiet_api, visitor))["isActiveFollower"] == "true"
    assert (await visitor.call(client, "GET", headers=visitor.headers(rotated.auth))).status_code == 200


async def test_the_new_subscription_is_checked_like_a_registration(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    visitor = await new_visitor(quiet_api.client, tenant, fake)
    other = await new_visitor(quiet_api.client, tenant, fake)
    client = quiet_api.client
    good = fake.new_subscription().to_json()

    def with_endpoint(url: str) -> dict[str, object]:
        return {"subscription": {**good, "endpoint": url}}

    def with_keys(**keys: str) -> dict[str, object]:
        return {"subscription": {**good, "keys": {**good["keys"], **keys}}}

    cases: list[tuple[object, int, str]] = [
        (with_endpoint("https://evil.example.com/push/1"), 422, "subscription.endpoint"),
        (with_endpoint("http://push.example.net/push/1"), 422, "subscription.endpoint"),
        (with_endpoint("not a url"), 422, "subscription.endpoint"),
        (with_keys(p256dh="AAAA"), 422, "subscription.keys.p256dh"),
        (with_keys(auth="c2hvcnQ"), 422, "subscription.keys.auth"),
        (with_keys(auth="not base64!"), 422, "subscription.keys.auth"),
        ({"subscription": {"endpoint": good["endpoint"]}}, 422, "subscription.keys"),
        ({}, 422, "subscription"),
        ([], 400, "body"),
        # Another subscriber's address cannot be taken over.
        ({"subscription": other.subscription.to_json()}, 422, "subscription.endpoint"),
    ]
    for body, status, field in cases:
        answer = await visitor.call(client, "POST", "/resubscribe", body)
        assert (answer.status_code, answer.json()["field"]) == (status, field), body
    taken = await visitor.call(client, "POST", "/resubscribe", {"subscription": other.subscription.to_json()})
    assert taken.json() == native_error(
        "invalid_field",
        "subscription.endpoint: this subscription is registered already as another subscriber",
        "subscription.endpoint",
    )

    # Nothing moved: both still answer to their own secrets.
    assert (await visitor.call(client, "GET")).status_code == 200
    assert (await other.call(client, "GET")).status_code == 200

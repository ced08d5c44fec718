"""Knowing a regId (or an endpoint) is not enough: unsubscribing, reporting engagement and registering an
endpoint again with other keys need the subscription's proof (issue #19)."""

from __future__ import annotations

from typing import Any

from clarion.db import Database
from clarion.subscriber.proof import AUTH_HEADER
from tests.app_tenant.factory import (
    native_error,
    new_app,
    proof,
    push,
    stats,
    subscribe_with_proof,
    wait_for_stats,
    web_body,
)
from tests.conftest import Api
from tests.fakes.push_service import FakePushService
from tests.subscriber.test_registration import alias_state

MISSING = native_error("unauthorized", f"The {AUTH_HEADER} header is required", AUTH_HEADER)
NO_SUCH = native_error("not_found", "There is no subscriber with this regId", "regId")
NO_SUBSCRIBER = native_error("invalid_field", "There is no subscriber with this regId", "regId")
NO_CAMPAIGN = native_error("invalid_field", "There is no campaign with this id", "campaign_id")


async def test_unsubscribing_needs_the_subscriptions_secret(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    sub = fake.new_subscription()
    registered = await quiet_api.client.post(
        "/sdk/v1/subscribers", json=web_body(tenant.app_key, sub.to_json())
    )
    reg_id = registered.json()["regId"]
    path, params = f"/sdk/v1/subscribers/{reg_id}", {"app_key": tenant.app_key}

    answer = await quiet_api.client.delete(path, params=params)
    assert (answer.status_code, answer.json()) == (401, MISSING)
    # A wrong secret, the public p256dh key or the endpoint: refused exactly like an unknown regId.
    for wrong in ("x", sub.auth[:-1], sub.auth + "A", sub.p256dh, sub.endpoint):
        answer = await quiet_api.client.delete(path, params=params, headers=proof(wrong))
        assert (answer.status_code, answer.json()) == (404, NO_SUCH), wrong
    assert (await alias_state(quiet_api, tenant.auth, reg_id))["isActiveFollower"] == "true"

    answer = await quiet_api.client.delete(path, params=params, headers=proof(sub.auth))
    assert (answer.status_code, answer.content) == (204, b"")
    assert (await alias_state(quiet_api, tenant.auth, reg_id))["isActiveFollower"] == "false"


async def test_a_native_device_proves_itself_with_its_token(quiet_api: Api, db: Database) -> None:
    tenant = await new_app(db)
    token = "fcm-registration-token:APA91bProofOfTheDevice"
    body = {"app_key": tenant.app_key, "platform": "android", "token": token}
    reg_id = (await quiet_api.client.post("/sdk/v1/subscribers", json=body)).json()["regId"]
    path, params = f"/sdk/v1/subscribers/{reg_id}", {"app_key": tenant.app_key}

    for wrong in (token[:-1], token + "x", reg_id, "-" * 22):
        answer = await quiet_api.client.delete(path, params=params, headers=proof(wrong))
        assert (answer.status_code, answer.json()) == (404, NO_SUCH), wrong
    answer = await quiet_api.client.delete(path, params=params, headers=proof(token))
    assert (answer.status_code, answer.content) == (204, b"")
    assert (await alias_state(quiet_api, tenant.auth, reg_id))["isActiveFollower"] == "false"


async def test_engagement_needs_the_proof_and_a_campaign_sent_to_the_subscriber(
    api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db, plan="unlimited")
    victim, victim_proof = await subscribe_with_proof(api.client, tenant, fake)
    attacker, attacker_proof = await subscribe_with_proof(api.client, tenant, fake)
    to_victim = (await push(api.client, tenant, audience={"tokens": [victim]})).json()["id"]
    to_attacker = (await push(api.client, tenant, audience={"tokens": [attacker]})).json()["id"]
    one_sent = {"status": "SENT", "send": 1, "received": 0, "clicked": 0, "closed": 0}
    for campaign_id in (to_victim, to_attacker):
        await wait_for_stats(api.client, tenant, campaign_id, one_sent)

    def event(reg_id: str, campaign_id: str, kind: str = "clicked") -> dict[str, Any]:
        return {"app_key": tenant.app_key, "regId": reg_id, "campaign_id": campaign_id, "type": kind}

    async def post(body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, Any]:
        answer = await api.client.post("/sdk/v1/events", json=body, headers=headers)
        return answer.status_code, (answer.json() if answer.content else None)

    # Forging a click for the victim: without a secret, with the attacker's own, with a guess.
    assert await post(event(victim, to_victim)) == (401, MISSING)
    assert await post(event(victim, to_victim), attacker_proof) == (422, NO_SUBSCRIBER)
    assert await post(event(victim, to_victim), proof("A" * 22)) == (422, NO_SUBSCRIBER)
    # Inflating a campaign that was not sent to the attacker, with the attacker's own proof.
    assert await post(event(attacker, to_victim), attacker_proof) == (422, NO_CAMPAIGN)
    assert await stats(api.client, tenant, to_victim) == one_sent

    # The subscriber itself, for its own campaign: counted, once.
    for kind in ("received", "clicked", "clicked"):
        assert await post(event(victim, to_victim, kind), victim_proof) == (204, None)
    assert await post(event(attacker, to_attacker, "closed"), attacker_proof) == (204, None)
    expected = {"status": "SENT", "send": 1, "received": 1, "clicked": 1, "closed": 0}
    assert await stats(api.client, tenant, to_victim) == expected
    assert await stats(api.client, tenant, to_attacker) == {**one_sent, "closed": 1}


async def test_an_endpoint_cannot_be_taken_over_with_other_keys(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    client = quiet_api.client
    real = fake.new_subscription()
    reg_id = (await client.post("/sdk/v1/subscribers", json=web_body(tenant.app_key, real.to_json()))).json()[
        "regId"
    ]
    params = {"app_key": tenant.app_key}
    tagged = await client.post(
        f"/sdk/v1/subscribers/{reg_id}/tags", params=params, json={"tag": "vip"}, headers=proof(real.auth)
    )
    assert tagged.status_code == 200
    aliased = await client.put(
        f"/sdk/v1/subscribers/{reg_id}/alias",
        params=params,
        json={"alias": "alice"},
        headers=proof(real.auth),
    )
    assert aliased.status_code == 200

    # Someone who learnt the endpoint registers it with keys of their own: refused, nothing changed.
    forged = {"endpoint": real.endpoint, "keys": fake.new_subscription().to_json()["keys"]}
    refused = native_error(
        "unauthorized",
        "This endpoint is registered already with other keys: send the registered subscription's auth "
        f"secret in the {AUTH_HEADER} header",
        AUTH_HEADER,
    )
    for headers in (None, proof(forged["keys"]["auth"]), proof(real.p256dh)):
        answer = await client.post(
            "/sdk/v1/subscribers", json=web_body(tenant.app_key, forged), headers=headers
        )
        assert (answer.status_code, answer.json()) == (401, refused), headers
    # Another p256dh with the real secret is other keys too.
    half = {"endpoint": real.endpoint, "keys": {"p256dh": forged["keys"]["p256dh"], "auth": real.auth}}
    answer = await client.post("/sdk/v1/subscribers", json=web_body(tenant.app_key, half))
    assert (answer.status_code, answer.json()) == (401, refused)

    # The real browser still holds its subscriber, alias and tags, with its own secret.
    mine = await client.get(f"/sdk/v1/subscribers/{reg_id}", params=params, headers=proof(real.auth))
    assert mine.json() == {"regId": reg_id, "alias": "alice", "tags": ["vip"], "active": True}
    # Registering again with the same keys needs nothing more: the same regId.
    again = await client.post("/sdk/v1/subscribers", json=web_body(tenant.app_key, real.to_json()))
    assert (again.status_code, again.json()) == (200, {"regId": reg_id})

    # The browser itself, with its secret, may register new keys for its endpoint: the same subscriber.
    moved = await client.post(
        "/sdk/v1/subscribers", json=web_body(tenant.app_key, forged), headers=proof(real.auth)
    )
    assert (moved.status_code, moved.json()) == (200, {"regId": reg_id})
    old = await client.get(f"/sdk/v1/subscribers/{reg_id}", params=params, headers=proof(real.auth))
    assert old.status_code == 401
    new = await client.get(
        f"/sdk/v1/subscribers/{reg_id}", params=params, headers=proof(forged["keys"]["auth"])
    )
    assert new.json() == {"regId": reg_id, "alias": "alice", "tags": ["vip"], "active": True}

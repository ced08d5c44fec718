"""Identity verification: an anonymous device that claims someone's user id does not receive their
Swrve pushes (issue #19). Binding a device to a user id needs the HMAC of the id made with the app's
identity key, which only the app's backend holds."""

from __future__ import annotations

import hashlib
from typing import Any

from clarion.app_tenant import service as apps
from tests.app_tenant.factory import id_hash, native_error
from tests.swrve.conftest import Swrve, report


async def _register(api: Swrve, token: str, **ids: str) -> tuple[int, Any]:
    body = {"app_key": api.app_key, "platform": "android", "token": token, **ids}
    answer = await api.client.post("/sdk/v1/subscribers", json=body)
    return answer.status_code, answer.json()


async def test_a_device_claiming_someones_user_id_gets_none_of_their_pushes(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign(platform="android")
    victim = await swrve_api.device("android", "victim")  # registered with the right hash
    attacker = swrve_api.fakes.fcm.new_token("swrve-test")
    other_app = await swrve_api.other_app()

    refusal = native_error(
        "identity_not_verified",
        "user_id_hash must be the HMAC-SHA256 of the id keyed with the app's identity key",
        "user_id_hash",
    )
    forgeries: list[dict[str, str]] = [
        {"user_id": "victim"},  # no hash at all
        {"user_id": "victim", "user_id_hash": ""},
        {"user_id": "victim", "user_id_hash": id_hash(swrve_api.identity_key, "someone-else")},
        {"user_id": "victim", "user_id_hash": id_hash(other_app.identity_secret_key, "victim")},
        {"user_id": "victim", "user_id_hash": hashlib.sha256(b"victim").hexdigest()},
        {"user_id": "victim", "user_id_hash": id_hash(swrve_api.identity_key, "victim")[:-1]},
        {"user_id": "victim", "external_user_id_hash": id_hash(swrve_api.identity_key, "victim")},
    ]
    for forged in forgeries:
        assert await _register(swrve_api, attacker, **forged) == (403, refusal), forged

    batch_id = await swrve_api.submit(push.push_key, ["victim"])
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=1, sent=1)
    assert len(swrve_api.received(victim)) == 1
    assert swrve_api.fakes.fcm.received_for(attacker) == []
    # Nothing was stored, not even the device without its user: registered now, it is new (201).
    status, _ = await _register(swrve_api, attacker)
    assert status == 201


async def test_external_user_ids_are_verified_alike(swrve_api: Swrve) -> None:
    token = swrve_api.fakes.fcm.new_token("swrve-test")
    refusal = native_error(
        "identity_not_verified",
        "external_user_id_hash must be the HMAC-SHA256 of the id keyed with the app's identity key",
        "external_user_id_hash",
    )
    user_ok = {"user_id": "u1", "user_id_hash": id_hash(swrve_api.identity_key, "u1")}
    assert await _register(swrve_api, token, external_user_id="e1", **user_ok) == (403, refusal)
    wrong = id_hash(swrve_api.identity_key, "e2")
    assert await _register(swrve_api, token, external_user_id="e1", external_user_id_hash=wrong) == (
        403,
        refusal,
    )
    # Upper-case hex is the same HMAC.
    right = id_hash(swrve_api.identity_key, "e1").upper()
    status, body = await _register(swrve_api, token, external_user_id="e1", external_user_id_hash=right)
    assert status == 201, body


async def test_registering_again_cannot_rebind_a_device_without_the_hash(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign(platform="android")
    device = await swrve_api.device("android", "u1")
    # The same token again (its own proof), claiming another user without that user's hash.
    claim = await _register(swrve_api, device.token, user_id="u2")
    assert claim[0] == 403
    batch_id = await swrve_api.submit(push.push_key, ["u2"])
    body = await swrve_api.report(batch_id)
    assert (body["counts"]["sent"], swrve_api.received(device)) == (0, [])
    # With u2's hash, the device is u2's now.
    hashed = id_hash(swrve_api.identity_key, "u2")
    assert await _register(swrve_api, device.token, user_id="u2", user_id_hash=hashed) == (
        200,
        {"regId": device.reg_id},
    )
    batch_id = await swrve_api.submit(push.push_key, ["u2"])
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=1, sent=1)
    assert len(swrve_api.received(device)) == 1


async def test_an_app_with_verification_off_binds_without_a_hash(swrve_api: Swrve) -> None:
    async with swrve_api.db.session() as session:
        await apps.update(session, swrve_api.app_key, identity_verification=False)
    push = await swrve_api.push_campaign(platform="android")
    token = swrve_api.fakes.fcm.new_token("swrve-test")
    status, body = await _register(swrve_api, token, user_id="from-the-backend")
    assert status == 201, body
    batch_id = await swrve_api.submit(push.push_key, ["from-the-backend"])
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=1, sent=1)
    assert len(swrve_api.fakes.fcm.received_for(token)) == 1

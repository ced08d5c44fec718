"""Who a batch reaches: both body shapes, one id or many, precedence of parameters, several devices
on several platforms, the campaign's platform, and external user ids."""

from __future__ import annotations

import json
from typing import Any

from tests.app_tenant.factory import proof
from tests.swrve.conftest import Device, Swrve, report


def _shown(api: Swrve, device: Device) -> list[dict[str, Any]]:
    """Title, body and sound of each notification an Android device received."""
    shown = []
    for received in api.received(device):
        message = received.message
        shown.append(
            {
                "title": message["notification"].get("title"),
                "body": message["notification"]["body"],
                "sound": message["android"].get("notification", {}).get("sound"),
            }
        )
    return shown


async def test_an_array_of_users_with_personalized_parameters(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign(platform="android")
    one, two = await swrve_api.device("android", "u1"), await swrve_api.device("android", "u2")
    batch_id = await swrve_api.submit(
        push.push_key, [{"swrve_user_id": "u1", "message": "Hi one"}, {"swrve_user_id": "u2"}]
    )
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=2, sent=2)
    assert _shown(swrve_api, one) == [{"title": "T", "body": "Hi one", "sound": None}]
    # The campaign's default message and title.
    assert _shown(swrve_api, two) == [{"title": "T", "body": "Default", "sound": None}]


async def test_common_parameters_with_ids_and_personalized_users(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign(message="Default", title="Campaign title")
    devices = {user: await swrve_api.device("android", user) for user in ("u1", "u2", "u3", "u4")}
    body = {
        "message": "Common",
        "sound": "common.caf",
        "users": [
            "u1",
            {"swrve_user_id": "u2", "message": "Mine", "ios_notification_title": "Personal title"},
            {"swrve_user_id": ["u3", "u4"], "sound": "pair.caf", "title": "Pair title"},
        ],
    }
    batch_id = await swrve_api.submit(push.push_key, body)
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=4, sent=4)
    # personalized > common > the campaign's defaults
    assert _shown(swrve_api, devices["u1"]) == [
        {"title": "Campaign title", "body": "Common", "sound": "common.caf"}
    ]
    assert _shown(swrve_api, devices["u2"]) == [
        {"title": "Personal title", "body": "Mine", "sound": "common.caf"}
    ]
    for user in ("u3", "u4"):
        assert _shown(swrve_api, devices[user]) == [
            {"title": "Pair title", "body": "Common", "sound": "pair.caf"}
        ]


async def test_common_parameters_may_follow_the_users(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    device = await swrve_api.device("android", "u1")
    batch_id = await swrve_api.submit(push.push_key, {"users": ["u1"], "message": "After", "title": "A"})
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=1, sent=1)
    assert _shown(swrve_api, device) == [{"title": "A", "body": "After", "sound": None}]


async def test_one_object_may_name_several_users(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    one, two = await swrve_api.device("android", "u1"), await swrve_api.device("web", "u2")
    batch_id = await swrve_api.submit(push.push_key, [{"swrve_user_id": ["u1", "u2"], "message": "Both"}])
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=2, sent=2)
    assert _shown(swrve_api, one) == [{"title": "T", "body": "Both", "sound": None}]
    [web] = swrve_api.received(two)
    assert json.loads(web.payload)["message"] == "Both"


async def test_a_user_named_twice_gets_one_notification_with_the_first_parameters(
    swrve_api: Swrve,
) -> None:
    push = await swrve_api.push_campaign()
    device = await swrve_api.device("android", "u1")
    body = [{"swrve_user_id": "u1", "message": "First"}, {"swrve_user_id": ["u1"], "message": "Again"}]
    batch_id = await swrve_api.submit(push.push_key, body)
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=1, sent=1)
    assert _shown(swrve_api, device) == [{"title": "T", "body": "First", "sound": None}]


async def test_a_user_with_devices_on_every_platform_gets_it_on_each(swrve_api: Swrve) -> None:
    await swrve_api.credentials("apns", "wns", "adm")
    push = await swrve_api.push_campaign(platform="all")
    devices = [
        await swrve_api.device(platform, "u1")
        for platform in ("android", "android", "ios", "wns", "adm", "web")
    ]
    batch_id = await swrve_api.submit(push.push_key, [{"swrve_user_id": "u1", "message": "Everywhere"}])
    # The report counts users: one user, sent.
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=1, sent=1)
    assert [len(swrve_api.received(device)) for device in devices] == [1, 1, 1, 1, 1, 1]


async def test_a_platform_campaign_reaches_only_that_platforms_devices(swrve_api: Swrve) -> None:
    await swrve_api.credentials("apns", "wns", "adm")
    platforms = ("android", "ios", "wns", "adm", "web")
    devices = {platform: await swrve_api.device(platform, "u1") for platform in platforms}
    for count, platform in enumerate(platforms, start=1):
        push = await swrve_api.push_campaign(platform=platform)
        batch_id = await swrve_api.submit(push.push_key, ["u1"])
        assert await swrve_api.report(batch_id) == report(batch_id, "done", total=1, sent=1)
        received = {name: len(swrve_api.received(device)) for name, device in devices.items()}
        assert received == {name: 1 if index < count else 0 for index, name in enumerate(platforms)}


async def test_external_user_ids_with_the_identity_key(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    e1 = await swrve_api.device("android", external="e1")
    e2 = await swrve_api.device("web", user_id="u2", external="e2")
    u3 = await swrve_api.device("android", "u3")
    gone = await swrve_api.device("android", external="e4")
    deleted = await swrve_api.client.delete(
        f"/sdk/v1/subscribers/{gone.reg_id}", params={"app_key": swrve_api.app_key}, headers=proof(gone.proof)
    )
    assert deleted.is_success
    body = [
        {"external_user_id": "e1", "message": "External"},
        {"external_user_id": ["e2", "nobody"]},
        "u3",
        {"external_user_id": "e4"},
    ]
    batch_id = await swrve_api.submit(push.push_key, body, identity_secret_key=swrve_api.identity_key)
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=5,
        sent=3,
        warnings=[("e4", "No Push Token Registered For User all", True)],
        failures=[("nobody", "No user mapping found for external user id 'nobody'", True)],
        retry_possible=True,
    )
    assert _shown(swrve_api, e1) == [{"title": "T", "body": "External", "sound": None}]
    assert len(swrve_api.received(e2)) == len(swrve_api.received(u3)) == 1
    assert swrve_api.received(gone) == []

    # The common-parameters shape takes external ids too.
    common = {"message": "Common", "users": [{"external_user_id": "e1"}]}
    batch_id = await swrve_api.submit(push.push_key, common, identity_secret_key=swrve_api.identity_key)
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=1, sent=1)
    assert _shown(swrve_api, e1)[1] == {"title": "T", "body": "Common", "sound": None}


async def test_external_user_ids_without_the_identity_key_are_not_sent(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    e1 = await swrve_api.device("android", external="e1")
    u2 = await swrve_api.device("android", "u2")
    batch_id = await swrve_api.submit(push.push_key, [{"external_user_id": "e1"}, "u2"])
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=2,
        sent=1,
        failures=[
            ("e1", "Attempted to send batch push using external ids, but no identity key provided", True)
        ],
        retry_possible=True,
    )
    assert swrve_api.received(e1) == []
    assert len(swrve_api.received(u2)) == 1

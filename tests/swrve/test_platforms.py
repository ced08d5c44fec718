"""Every parameter of the spec's table, as each platform's push service receives it (FCM, APNs, WNS,
ADM and Web Push fakes). docs/swrve-batch.md has the same mapping as a table."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from typing import Any

from tests.swrve.conftest import Device, Swrve, report

IMAGE = "https://cdn.example.com/a.png"
THUMBNAIL = "https://cdn.example.com/t.png"
BUTTONS = [
    {"title": "Open", "action_type": "open_url", "action": "https://example.com/open"},
    {"title": "Later", "action_type": "dismiss"},
    {"title": "App", "action_type": "open_app"},
]
EVERY_PARAMETER: dict[str, Any] = {
    "message": "Hello",
    "sound": "ding.caf",
    "payload": {"k": "v", "n": 1, "nested": {"a": [1]}},
    "notification_category": "reply",
    "notification_title": "Title",
    "deeplink": "app://open/1",
    "badge_number": 3,
    "subtitle": "Sub",
    "rich_media_url": IMAGE,
    "rich_media_type": "image",
    "rich_media_title": "Media title",
    "rich_media_subtitle": "Media subtitle",
    "rich_media_message": "Media message",
    "rich_media_thumbnail_url": THUMBNAIL,
    "buttons": BUTTONS,
    "time_to_live": 3600,
    "collapse_key": 42,
}
PLATFORMS = ("android", "ios", "wns", "adm", "web")


async def _devices(api: Swrve, user: str, platforms: tuple[str, ...] = PLATFORMS) -> dict[str, Device]:
    return {platform: await api.device(platform, user) for platform in platforms}


def _near(value: float, expected: float, slack: float = 15) -> bool:
    return expected - slack <= value <= expected


def _xml(element: ET.Element) -> Any:
    """An element as nested data: (tag, attributes, text, children)."""
    return (element.tag, element.attrib, element.text, [_xml(child) for child in element])


def _launch(campaign_id: str) -> str:
    launch = {"campaign_id": campaign_id, "url": "app://open/1", "data": EVERY_PARAMETER["payload"]}
    return json.dumps(launch, separators=(",", ":"))


async def test_every_parameter_reaches_each_platform_that_has_its_field(swrve_api: Swrve) -> None:
    await swrve_api.credentials("apns", "wns", "adm")
    push = await swrve_api.push_campaign()
    devices = await _devices(swrve_api, "u1")
    # collapse_key is passed as an integer (spec); every platform takes it as a string.
    batch_id = await swrve_api.submit(push.push_key, [{"swrve_user_id": "u1", **EVERY_PARAMETER}])
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=1, sent=1)

    [fcm] = swrve_api.received(devices["android"])
    message = dict(fcm.message)
    campaign_id = message["data"]["campaign_id"]
    android = message.pop("android")
    assert _near(int(android.pop("ttl").removesuffix("s")), 3600)
    assert android == {
        "priority": "HIGH",
        "collapse_key": "42",
        "notification": {"sound": "ding.caf", "click_action": "reply", "tag": "42", "notification_count": 3},
    }
    data = dict(message.pop("data"))
    assert json.loads(data.pop("buttons")) == [{"action": None, **button} for button in BUTTONS]
    # Android has no notification field for the subtitle or rich media: they travel in data.
    assert json.loads(data.pop("media")) == {
        "url": IMAGE,
        "type": "image",
        "title": "Media title",
        "subtitle": "Media subtitle",
        "message": "Media message",
        "thumbnail_url": THUMBNAIL,
    }
    # FCM data values are strings: the payload's non-string values arrive as JSON.
    assert data == {
        "k": "v",
        "n": "1",
        "nested": '{"a":[1]}',
        "campaign_id": campaign_id,
        "url": "app://open/1",
        "subtitle": "Sub",
    }
    assert message == {
        "token": devices["android"].token,
        "notification": {"title": "Title", "body": "Hello", "image": IMAGE},
    }

    [apns] = swrve_api.received(devices["ios"])
    assert apns.payload == {
        "aps": {
            "alert": {"title": "Title", "subtitle": "Sub", "body": "Hello"},
            "badge": 3,
            "sound": "ding.caf",
            "category": "reply",
            "mutable-content": 1,
        },
        "campaign_id": campaign_id,
        "url": "app://open/1",
        "image": IMAGE,
        "media": {
            "url": IMAGE,
            "type": "image",
            "title": "Media title",
            "subtitle": "Media subtitle",
            "message": "Media message",
            "thumbnail_url": THUMBNAIL,
        },
        "buttons": BUTTONS,
        "k": "v",
        "n": 1,
        "nested": {"a": [1]},
    }
    headers = apns.headers
    assert _near(int(headers["apns-expiration"]), time.time() + 3600)
    assert (headers["apns-push-type"], headers["apns-priority"], headers["apns-collapse-id"]) == (
        "alert",
        "10",
        "42",
    )

    [wns] = swrve_api.received(devices["wns"])
    launch = _launch(campaign_id)
    assert _xml(wns.toast()) == (
        "toast",
        {"launch": launch},
        None,
        [
            (
                "visual",
                {},
                None,
                [
                    (
                        "binding",
                        {"template": "ToastGeneric"},
                        None,
                        [
                            ("text", {}, "Title", []),
                            ("text", {}, "Hello", []),
                            ("text", {"placement": "attribution"}, "Sub", []),
                            ("image", {"placement": "hero", "src": IMAGE}, None, []),
                        ],
                    )
                ],
            ),
            (
                "actions",
                {},
                None,
                [
                    (
                        "action",
                        {
                            "content": "Open",
                            "activationType": "protocol",
                            "arguments": "https://example.com/open",
                        },
                        None,
                        [],
                    ),
                    (
                        "action",
                        {"content": "Later", "activationType": "system", "arguments": "dismiss"},
                        None,
                        [],
                    ),
                    (
                        "action",
                        {"content": "App", "activationType": "foreground", "arguments": launch},
                        None,
                        [],
                    ),
                ],
            ),
        ],
    )
    assert (wns.wns_type, wns.headers["x-wns-tag"]) == ("wns/toast", "42")
    assert _near(int(wns.headers["x-wns-ttl"]), 3600)

    [adm] = swrve_api.received(devices["adm"])
    body = dict(adm.body)
    assert _near(body.pop("expiresAfter"), 3600)
    adm_data = dict(body.pop("data"))
    assert json.loads(adm_data.pop("buttons")) == [{"action": None, **button} for button in BUTTONS]
    assert json.loads(adm_data.pop("media"))["thumbnail_url"] == THUMBNAIL
    assert adm_data == {
        "k": "v",
        "n": "1",
        "nested": '{"a":[1]}',
        "campaign_id": campaign_id,
        "url": "app://open/1",
        "title": "Title",
        "message": "Hello",
        "subtitle": "Sub",
        "image": IMAGE,
        "sound": "ding.caf",
        "category": "reply",
    }
    assert body == {"consolidationKey": "42"}

    [web] = swrve_api.received(devices["web"])
    assert json.loads(web.payload) == {
        "campaign_id": campaign_id,
        "title": "Title",
        "message": "Hello",
        "icon": None,
        "image": IMAGE,
        "redirect_url": "app://open/1",
        # A browser notification's buttons open URLs: the open_url ones are shown.
        "buttons": [{"title": "Open", "url": "https://example.com/open"}],
        "display_time": 0,
        "tag": "42",
        "data": {"k": "v", "n": 1, "nested": {"a": [1]}},
    }
    assert _near(int(web.headers["ttl"]), 3600)


async def test_silent_pushes_go_to_android_ios_and_adm_only(swrve_api: Swrve) -> None:
    await swrve_api.credentials("apns", "wns", "adm")
    push = await swrve_api.push_campaign()
    devices = await _devices(swrve_api, "u1")
    user = {"swrve_user_id": "u1", "silent": True, "payload": {"sync": "now"}, "time_to_live": 60}
    batch_id = await swrve_api.submit(push.push_key, [user])
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=1,
        sent=1,
        warnings=[
            ("u1", "Silent push not supported for platform wns", True),
            ("u1", "Silent push not supported for platform web", True),
        ],
        retry_possible=True,
    )
    [fcm] = swrve_api.received(devices["android"])
    campaign_id = fcm.message["data"]["campaign_id"]
    message = dict(fcm.message)
    assert _near(int(message["android"].pop("ttl").removesuffix("s")), 60)
    # Data only, at normal priority: no notification is shown.
    assert message == {
        "token": devices["android"].token,
        "data": {"sync": "now", "campaign_id": campaign_id},
        "android": {"priority": "NORMAL"},
    }
    [apns] = swrve_api.received(devices["ios"])
    assert apns.payload == {"aps": {"content-available": 1}, "campaign_id": campaign_id, "sync": "now"}
    assert (apns.headers["apns-push-type"], apns.headers["apns-priority"]) == ("background", "5")
    [adm] = swrve_api.received(devices["adm"])
    assert adm.body["data"] == {"sync": "now", "campaign_id": campaign_id}
    assert swrve_api.received(devices["wns"]) == swrve_api.received(devices["web"]) == []


async def test_rich_media_types_each_platform_supports(swrve_api: Swrve) -> None:
    await swrve_api.credentials("apns", "wns", "adm")
    push = await swrve_api.push_campaign()
    video = await _devices(swrve_api, "u1")
    gif = await _devices(swrve_api, "u2", ("android", "ios"))
    users = [
        {"swrve_user_id": "u1", "rich_media_url": "https://v.example.com/v.mp4", "rich_media_type": "video"},
        {
            "swrve_user_id": "u2",
            "rich_media_url": "https://v.example.com/a.gif",
            "rich_media_type": "gif",
            "rich_media_thumbnail_url": THUMBNAIL,
        },
    ]
    batch_id = await swrve_api.submit(push.push_key, users)
    only_image = "Invalid media type, must be one of ['image']"
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=2,
        sent=2,
        warnings=[
            ("u1", only_image, True),
            ("u1", only_image, True),
            ("u1", only_image, True),
            ("u2", "Invalid media type, must be one of ['image', 'video']", True),
        ],
        retry_possible=True,
    )
    sent = {f"u1 {p}": len(swrve_api.received(d)) for p, d in video.items()}
    sent |= {f"u2 {p}": len(swrve_api.received(d)) for p, d in gif.items()}
    assert sent == {
        "u1 android": 1,
        "u1 ios": 1,
        "u1 wns": 0,
        "u1 adm": 0,
        "u1 web": 0,
        "u2 android": 0,
        "u2 ios": 1,
    }
    [ios_gif] = swrve_api.received(gif["ios"])
    assert ios_gif.payload["media"] == {
        "url": "https://v.example.com/a.gif",
        "type": "gif",
        "thumbnail_url": THUMBNAIL,
    }
    assert ios_gif.payload["aps"]["mutable-content"] == 1


async def test_the_alternative_spellings_of_title_and_badge(swrve_api: Swrve) -> None:
    await swrve_api.credentials("apns")
    push = await swrve_api.push_campaign(platform="ios")
    one, two = await swrve_api.device("ios", "u1"), await swrve_api.device("ios", "u2")
    users = [
        {"swrve_user_id": "u1", "title": "Short look", "badge": 0},  # 0 clears the badge
        {"swrve_user_id": "u2", "ios_notification_title": "Watch", "badge_number": 7},
    ]
    batch_id = await swrve_api.submit(push.push_key, users)
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=2, sent=2)
    [first], [second] = swrve_api.received(one), swrve_api.received(two)
    assert first.payload["aps"] == {"alert": {"title": "Short look", "body": "Default"}, "badge": 0}
    assert second.payload["aps"] == {"alert": {"title": "Watch", "body": "Default"}, "badge": 7}


async def test_each_web_recipient_gets_its_own_time_to_live(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign(platform="web")
    short, long = await swrve_api.device("web", "u1"), await swrve_api.device("web", "u2")
    users = [{"swrve_user_id": "u1", "time_to_live": 60}, {"swrve_user_id": "u2", "time_to_live": 3600}]
    batch_id = await swrve_api.submit(push.push_key, users)
    assert (await swrve_api.report(batch_id))["status"] == "done"
    assert _near(int(swrve_api.received(long)[0].headers["ttl"]), 3600)
    assert _near(int(swrve_api.received(short)[0].headers["ttl"]), 60)


async def test_rich_media_urls_must_be_https_with_an_extension(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    for user in ("u1", "u2", "u3", "u4"):
        await swrve_api.device("android", user)
    users = [
        {"swrve_user_id": "u1", "rich_media_url": "http://cdn.example.com/a.png"},
        {"swrve_user_id": "u2", "rich_media_url": "https://cdn.example.com/picture"},
        {"swrve_user_id": "u3", "rich_media_url": IMAGE, "rich_media_thumbnail_url": "javascript:x.png"},
        {"swrve_user_id": "u4", "rich_media_url": IMAGE, "rich_media_thumbnail_url": THUMBNAIL},
    ]
    batch_id = await swrve_api.submit(push.push_key, users)
    media = "Failure to parse request. 'rich_media_url' must be a valid HTTPS URL that includes an extension"
    thumbnail = media.replace("rich_media_url", "rich_media_thumbnail_url")
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=4,
        sent=1,
        failures=[("u1", media, True), ("u2", media, True), ("u3", thumbnail, True)],
        retry_possible=True,
    )

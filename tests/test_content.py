"""The one content model's codec: what campaigns.payload and deliveries.params hold, read back."""

import json

from clarion import content
from clarion.campaign import payload
from clarion.campaign.schemas import Button as ContentButton
from clarion.campaign.schemas import Content
from clarion.content import Button, Notification, RichMedia
from clarion.swrve.params import message_fields

FULL = Notification(
    campaign_id="7",
    message="Half price",
    title="Sale",
    subtitle="Shop",
    icon="https://img.example.com/i.png",
    url="app://sale",
    buttons=(Button("Open", "open_url", "https://a.example/"), Button("Later", "dismiss")),
    sound="chime",
    badge=2,
    category="OFFER",
    rich_media=RichMedia("https://img.example.com/m.gif", "gif", title="t"),
    data={"k": [1, {"n": None}]},
    ttl_s=60,
    collapse_key="sale",
    silent=False,
    high_priority=False,
    display_time_s=5,
)


def test_encoded_notification_survives_json_and_decodes_to_itself() -> None:
    stored = json.loads(json.dumps(content.encode(FULL)))
    assert content.decode(stored) == FULL
    assert content.decode(content.encode(Notification("1", "m"))) == Notification("1", "m")


def test_campaign_rows_of_the_first_shape_still_decode() -> None:
    legacy = {
        "title": "Sale",
        "message": "Half price",
        "icon": None,
        "image": "https://img.example.com/s.png",
        "redirect_url": "https://shop.example/",
        "buttons": [{"title": "Go", "url": "https://shop.example/go"}],
    }
    assert content.decode(legacy) == Notification(
        campaign_id="",
        message="Half price",
        title="Sale",
        image="https://img.example.com/s.png",
        url="https://shop.example/",
        buttons=(Button("Go", "open_url", "https://shop.example/go"),),
    )
    # A Swrve batch's campaign row: no icon or image keys at all.
    swrve_row = {"title": "", "message": "", "redirect_url": "", "buttons": []}
    assert content.decode(swrve_row) == Notification(campaign_id="", message="", title="", url="")


def test_web_payload_keeps_the_service_workers_fields() -> None:
    gravitec = Content(
        message="m", title="t", redirect_url="https://r.example/", buttons=(ContentButton("b", "https://b/"),)
    )
    assert payload.build("9", gravitec, 30, "tag") == {
        "campaign_id": "9",
        "title": "t",
        "message": "m",
        "icon": None,
        "image": None,
        "redirect_url": "https://r.example/",
        "buttons": [{"title": "b", "url": "https://b/"}],
        "display_time": 30,
        "tag": "tag",
    }
    fields = json.loads(content.web_payload(FULL))
    assert fields["data"] == {"k": [1, {"n": None}]}
    assert fields["buttons"] == [{"title": "Open", "url": "https://a.example/"}]  # dismiss has no URL


def test_swrve_parameters_become_an_encoded_notification() -> None:
    params = {
        "message": "hi",
        "notification_title": "T",
        "rich_media_url": "https://img.example.com/p.png",
        "buttons": [{"title": "B", "action_type": "open_app", "action": None}],
        "payload": {"a": 1},
        "time_to_live": 30,
        "collapse_key": "c",
        "silent": False,
    }
    decoded = content.decode(message_fields(42, params))
    assert decoded == Notification(
        campaign_id="42",
        message="hi",
        title="T",
        image="https://img.example.com/p.png",
        buttons=(Button("B", "open_app", None),),
        rich_media=RichMedia("https://img.example.com/p.png", "image"),
        data={"a": 1},
        ttl_s=30,
        collapse_key="c",
    )

"""Declarative Web Push: the payload against the field list docs/declarative-web-push.md documents,
which subscriptions get it, and the form a fake push service decrypts at the end of a real send."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clarion import content
from clarion.config import Settings
from clarion.content import Button, Notification
from clarion.provider.webpush import MAX_PLAINTEXT_BYTES, wants_declarative
from tests.conftest import Api, make_settings
from tests.fakes.push_service import FakePushService
from tests.helpers import create_app, push, subscribe, wait_for_status

DOC = Path(__file__).resolve().parents[1] / "docs" / "declarative-web-push.md"
_ROW = re.compile(r"^\| `([^`]+)` \| (\w+) \| (yes|no) \|", re.MULTILINE)
_TYPES: dict[str, type | tuple[type, ...]] = {
    "integer": int,
    "boolean": bool,
    "string": str,
    "object": dict,
    "array": list,
}


def documented() -> dict[str, tuple[str, bool]]:
    """member path -> (type, required), from the doc's "Fields" table."""
    fields = DOC.read_text().split("## Fields", 1)[1].split("\n## ", 1)[0]
    return {name: (kind, required == "yes") for name, kind, required in _ROW.findall(fields)}


def problems(value: dict[str, Any], fields: dict[str, tuple[str, bool]], prefix: str = "") -> list[str]:
    """Every way `value` strays from the documented fields: unknown members, wrong types, missing ones."""
    found: list[str] = []
    children = {
        name[len(prefix) :]: spec
        for name, spec in fields.items()
        if name.startswith(prefix) and "." not in name[len(prefix) :]
    }
    for name, (_kind, required) in children.items():
        if required and name not in value:
            found.append(f"{prefix}{name} is missing")
    for name, member in value.items():
        spec = children.get(name)
        if spec is None:
            found.append(f"{prefix}{name} is not documented")
            continue
        expected = _TYPES[spec[0]]
        if not isinstance(member, expected) or (expected is int and isinstance(member, bool)):
            found.append(f"{prefix}{name} is not a {spec[0]}")
        elif isinstance(member, dict) and any(f.startswith(f"{prefix}{name}.") for f in fields):
            # An object whose members the doc lists; one it does not (the app's free data) is opaque.
            found.extend(problems(member, fields, f"{prefix}{name}."))
        elif isinstance(member, list):
            for item in member:
                found.extend(problems(item, fields, f"{prefix}{name}[]."))
    return found


FULL = Notification(
    campaign_id="42",
    message="Half price today",
    title="Sale",
    icon="https://img.example.com/i.png",
    image="https://img.example.com/big.png",
    url="https://shop.example/sale",
    buttons=(Button("Open", "open_url", "https://shop.example/open"), Button("Later", "dismiss")),
    badge=3,
    data={"order": 7},
    collapse_key="sale",
    display_time_s=0,
)


def test_the_doc_lists_the_fields_the_code_writes() -> None:
    fields = documented()
    assert set(fields) == {
        "web_push",
        "mutable",
        "app_badge",
        "notification",
        "notification.title",
        "notification.body",
        "notification.navigate",
        "notification.icon",
        "notification.image",
        "notification.tag",
        "notification.requireInteraction",
        "notification.actions",
        "notification.actions[].action",
        "notification.actions[].title",
        "notification.actions[].navigate",
        "notification.data",
        "notification.data.campaign_id",
        "notification.data.display_time",
        "notification.data.data",
    }


def test_a_full_notification_maps_onto_every_documented_field() -> None:
    fields = content.declarative_fields(FULL)
    assert fields == {
        "web_push": 8030,
        "mutable": True,
        "app_badge": 3,
        "notification": {
            "title": "Sale",
            "body": "Half price today",
            "navigate": "https://shop.example/sale",
            "icon": "https://img.example.com/i.png",
            "image": "https://img.example.com/big.png",
            "tag": "sale",
            "requireInteraction": True,
            # A button without a URL (dismiss) has no declarative action, as in the classic payload.
            "actions": [{"action": "button-0", "title": "Open", "navigate": "https://shop.example/open"}],
            "data": {"campaign_id": "42", "display_time": 0, "data": {"order": 7}},
        },
    }
    assert problems(fields, documented()) == []
    assert json.loads(content.declarative_payload(FULL) or b"") == fields


def test_a_minimal_notification_has_only_the_required_fields() -> None:
    fields = content.declarative_fields(
        Notification("9", "Hello", url="https://a.example/", display_time_s=30)
    )
    assert fields == {
        "web_push": 8030,
        "mutable": True,
        "notification": {
            "title": "",
            "body": "Hello",
            "navigate": "https://a.example/",
            "data": {"campaign_id": "9", "display_time": 30},
        },
    }
    assert problems(fields, documented()) == []


def test_the_validator_catches_what_strays_from_the_doc() -> None:
    fields = content.declarative_fields(FULL)
    assert fields is not None
    fields["notification"]["vibrate"] = [100]
    fields["notification"]["actions"][0]["navigate"] = 5
    del fields["notification"]["navigate"]
    assert problems(fields, documented()) == [
        "notification.navigate is missing",
        "notification.actions[].navigate is not a string",
        "notification.vibrate is not documented",
    ]


def test_without_a_url_there_is_no_declarative_form() -> None:
    assert content.declarative_fields(Notification("9", "Hello")) is None
    assert content.declarative_payload(Notification("9", "Hello")) is None


@pytest.mark.parametrize(
    ("form", "endpoint", "declarative"),
    [
        ("auto", "https://web.push.apple.com/QGx1Z", True),
        ("auto", "https://fcm.googleapis.com/fcm/send/abc", False),
        ("auto", "https://web.push.apple.com.evil.example/x", False),
        ("declarative", "https://fcm.googleapis.com/fcm/send/abc", True),
        ("classic", "https://web.push.apple.com/QGx1Z", False),
    ],
)
def test_which_subscriptions_get_the_declarative_form(form: Any, endpoint: str, declarative: bool) -> None:
    assert wants_declarative(form, endpoint) is declarative


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, web_push_form="declarative")


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


async def test_the_push_service_receives_the_declarative_form(api: Api, fake: FakePushService) -> None:
    keys = await create_app(api.settings)
    _reg_id, sub = await subscribe(api.client, keys, fake)
    campaign_id = await push(
        api.client,
        keys,
        push_tag="news",
        display_time=20,
        payload={
            "title": "Headline",
            "message": "Body",
            "redirect_url": "https://example.com/story",
            "buttons": [{"title": "Read", "url": "https://example.com/read"}],
        },
    )
    await asyncio.to_thread(fake.wait_for, 1, 10)
    await wait_for_status(api.client, keys, campaign_id, "SENT")
    [message] = fake.received_for(sub.sub_id)
    received = json.loads(message.payload)
    assert received == {
        "web_push": 8030,
        "mutable": True,
        "notification": {
            "title": "Headline",
            "body": "Body",
            "navigate": "https://example.com/story",
            "tag": "news",
            "actions": [{"action": "button-0", "title": "Read", "navigate": "https://example.com/read"}],
            "data": {"campaign_id": campaign_id, "display_time": 20},
        },
    }
    assert problems(received, documented()) == []
    assert message.headers["topic"] == "news"
    assert len(message.payload) <= MAX_PLAINTEXT_BYTES

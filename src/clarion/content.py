"""A notification's content: the one model every surface builds and every provider reads, and its codec.

Gravitec campaigns (campaign/service.py) and Swrve batch recipients (swrve/params.py) both become a
`Notification`; it is stored as JSON by `encode` (campaigns.payload, and deliveries.params["message"]
for a batch recipient's own content) and read back by `decode`. Web Push sends `web_payload(...)`, the
object a browser's service worker receives; fcm.py, apns.py, wns.py and adm.py each map the same
`Notification` onto their service's request.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ActionType = Literal["open_app", "open_url", "dismiss"]
# Rich media types that a notification can show as its picture.
IMAGE_MEDIA = frozenset({"image", "gif"})
# 28,800 s (8 h): what a Notification lives without a TTL of its own; campaigns and batches set theirs.
DEFAULT_TTL_S = 28_800


@dataclass(frozen=True, slots=True)
class Button:
    title: str
    action_type: ActionType = "open_url"
    action: str | None = None  # the URL or deeplink for open_url


@dataclass(frozen=True, slots=True)
class RichMedia:
    url: str
    type: str  # image | gif | video | audio (as Swrve names them); mapped per platform
    title: str | None = None
    subtitle: str | None = None
    message: str | None = None
    thumbnail_url: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    campaign_id: str
    message: str
    title: str | None = None
    subtitle: str | None = None
    icon: str | None = None
    image: str | None = None
    url: str | None = None  # where a tap leads: the Gravitec redirect_url or the Swrve deeplink
    buttons: tuple[Button, ...] = ()
    sound: str | None = None
    badge: int | None = None
    category: str | None = None
    rich_media: RichMedia | None = None
    data: dict[str, Any] = field(default_factory=dict)  # free JSON for the app (Swrve "payload")
    ttl_s: int = DEFAULT_TTL_S
    collapse_key: str | None = None  # a Gravitec campaign's push_tag, a Swrve collapse_key
    silent: bool = False  # a data-only / background message
    high_priority: bool = True
    display_time_s: int = 0  # how long a browser shows it (Gravitec's display_time; 0: the browser's)

    def shown_image(self) -> str | None:
        """The picture to show: the image, else rich media that is a picture (an image or a gif)."""
        media = self.rich_media
        if self.image is None and media is not None and media.type in IMAGE_MEDIA:
            return media.url
        return self.image


def encode(notification: Notification) -> dict[str, Any]:
    """The notification as the JSON stored in campaigns.payload and deliveries.params."""
    return asdict(notification)


def decode(stored: dict[str, Any]) -> Notification:
    """A stored notification: `encode`'s shape, or a campaign row written before it (see `_legacy`)."""
    if "redirect_url" in stored:
        return _legacy(stored)
    media = stored.get("rich_media")
    return Notification(
        **{
            **stored,
            "buttons": tuple(Button(**b) for b in stored.get("buttons", ())),
            "rich_media": RichMedia(**media) if media else None,
        }
    )


def _legacy(stored: dict[str, Any]) -> Notification:
    """campaigns.payload as it was first written (and as Swrve batches' campaign rows still are):
    {title, message, icon, image, redirect_url, buttons: [{title, url}]}, with no campaign id.
    A campaign row's own columns (id, ttl, push_tag, display time, urgency) complete it on load."""
    buttons = stored.get("buttons") or []
    return Notification(
        campaign_id="",
        message=str(stored["message"]),
        title=str(stored["title"]),
        icon=stored.get("icon"),
        image=stored.get("image"),
        url=str(stored["redirect_url"]),
        buttons=tuple(Button(str(b["title"]), "open_url", str(b["url"])) for b in buttons),
    )


def web_fields(notification: Notification) -> dict[str, Any]:
    """The JSON object a Web Push subscriber's service worker receives (CONTRACT.md, "Delivery")."""
    fields: dict[str, Any] = {
        "campaign_id": notification.campaign_id,
        "title": notification.title or "",
        "message": notification.message,
        "icon": notification.icon,
        "image": notification.image,
        "redirect_url": notification.url,
        "buttons": [{"title": b.title, "url": b.action} for b in notification.buttons if b.action],
        "display_time": notification.display_time_s,
        "tag": notification.collapse_key,
    }
    if notification.data:
        fields["data"] = notification.data
    return fields


def display_tag(campaign_id: int | str, collapse_key: str | None) -> str:
    """The tag a campaign's notification is shown under and its Web Push Topic: its collapse key (push_tag),
    else one of its own, the default Clarion's service worker gives too; so that an update or retraction
    (campaign/follow_up.py) can name it."""
    return collapse_key if collapse_key is not None else f"clarion-{campaign_id}"


def retract_fields(campaign_id: str, tag: str) -> dict[str, Any]:
    """What Clarion's service worker receives to close a shown notification (a campaign retracted)."""
    return {"campaign_id": campaign_id, "retract": True, "tag": tag}


def web_payload(notification: Notification) -> bytes:
    return _json(web_fields(notification))


# Declarative Web Push (W3C Push API, "declarative push message"; WebKit's explainer): the value of the
# `web_push` member that marks a push message as declarative, the RFC's number.
DECLARATIVE_MAGIC = 8030


def declarative_fields(notification: Notification) -> dict[str, Any] | None:
    """The declarative form of the notification (docs/declarative-web-push.md maps every field), or
    None when it has none: a declarative message must say where a tap leads (`navigate`).

    `mutable` is set so that a browser with Clarion's service worker still hands it the push event
    (Safari then shows what the worker shows, and the worker counts it received); Clarion's own fields
    that have no declarative member ride in `notification.data`, which the worker reads back."""
    if notification.url is None:
        return None
    shown: dict[str, Any] = {
        "title": notification.title or "",
        "body": notification.message,
        "navigate": notification.url,
        "data": _declarative_data(notification),
    }
    for name, value in (("icon", notification.icon), ("image", notification.image)):
        if value is not None:
            shown[name] = value
    if notification.collapse_key is not None:
        shown["tag"] = notification.collapse_key
    actions = [
        {"action": f"button-{index}", "title": b.title, "navigate": b.action}
        for index, b in enumerate(b for b in notification.buttons if b.action)
    ]
    if actions:
        shown["actions"] = actions
    if notification.display_time_s == 0:
        shown["requireInteraction"] = True
    fields: dict[str, Any] = {"web_push": DECLARATIVE_MAGIC, "notification": shown, "mutable": True}
    if notification.badge is not None:
        fields["app_badge"] = notification.badge
    return fields


def _declarative_data(notification: Notification) -> dict[str, Any]:
    data: dict[str, Any] = {
        "campaign_id": notification.campaign_id,
        "display_time": notification.display_time_s,
    }
    if notification.data:
        data["data"] = notification.data
    return data


def declarative_payload(notification: Notification) -> bytes | None:
    """`declarative_fields` as the bytes Web Push encrypts; None when the notification has no URL."""
    fields = declarative_fields(notification)
    return None if fields is None else _json(fields)


def retract_payload(campaign_id: str, tag: str) -> bytes:
    return _json(retract_fields(campaign_id, tag))


def _json(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()

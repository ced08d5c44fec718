"""A platform-neutral notification, mapped by each native provider onto its own request format.

Gravitec campaigns and Swrve batches both become a NativeMessage; fcm.py, apns.py, wns.py and adm.py
each turn it into their service's body and check their service's size limit before sending.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ActionType = Literal["open_app", "open_url", "dismiss"]
# Rich media types that a notification can show as its picture.
IMAGE_MEDIA = frozenset({"image", "gif"})


@dataclass(frozen=True, slots=True)
class NativeButton:
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
class NativeMessage:
    campaign_id: str
    message: str
    title: str | None = None
    subtitle: str | None = None
    icon: str | None = None
    image: str | None = None
    url: str | None = None  # where a tap leads: the Gravitec redirect_url or the Swrve deeplink
    buttons: tuple[NativeButton, ...] = ()
    sound: str | None = None
    badge: int | None = None
    category: str | None = None
    rich_media: RichMedia | None = None
    data: dict[str, Any] = field(default_factory=dict)  # free JSON for the app (Swrve "payload")
    ttl_s: int = 28_800
    collapse_key: str | None = None
    silent: bool = False  # a data-only / background message
    high_priority: bool = True

    def shown_image(self) -> str | None:
        """The picture to show: the image, else rich media that is a picture (an image or a gif)."""
        media = self.rich_media
        if self.image is None and media is not None and media.type in IMAGE_MEDIA:
            return media.url
        return self.image


def message_to_json(message: NativeMessage) -> dict[str, Any]:
    """A NativeMessage as JSON, for a ledger row's per-recipient content."""
    return asdict(message)


def message_from_json(fields: dict[str, Any]) -> NativeMessage:
    media = fields.get("rich_media")
    return NativeMessage(
        **{
            **fields,
            "buttons": tuple(NativeButton(**b) for b in fields.get("buttons", ())),
            "rich_media": RichMedia(**media) if media else None,
        }
    )

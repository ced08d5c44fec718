"""A Gravitec campaign's content as a Notification, and the Web Push size rule it must pass."""

from __future__ import annotations

import json
from typing import Any

from clarion.campaign.schemas import Content
from clarion.content import Button, Notification, web_fields

# 3993 bytes: the 4096-byte body limit (RFC 8030 §7.2) minus the 86-byte aes128gcm header, the 16-byte
# tag and the 1-byte padding delimiter (RFC 8291 §4).
MAX_PAYLOAD_BYTES = 3993
# The widest id a campaign can have, used to size a payload before the campaign has its id.
WIDEST_CAMPAIGN_ID = "9" * 19


def notification(
    campaign_id: str, content: Content, display_time_s: int, push_tag: str | None
) -> Notification:
    return Notification(
        campaign_id=campaign_id,
        message=content.message,
        title=content.title,
        icon=content.icon,
        image=content.image,
        url=content.redirect_url,
        buttons=tuple(Button(b.title, "open_url", b.url) for b in content.buttons),
        collapse_key=push_tag,
        display_time_s=display_time_s,
    )


def build(campaign_id: str, content: Content, display_time_s: int, push_tag: str | None) -> dict[str, Any]:
    """What a subscriber's service worker receives for this campaign."""
    return web_fields(notification(campaign_id, content, display_time_s, push_tag))


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def fits(content: Content, display_time_s: int, push_tag: str | None) -> bool:
    widest = build(WIDEST_CAMPAIGN_ID, content, display_time_s, push_tag)
    return len(encode(widest)) <= MAX_PAYLOAD_BYTES

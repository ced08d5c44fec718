"""The JSON object a Web Push subscriber's service worker receives (CONTRACT.md, "Delivery")."""

from __future__ import annotations

import json
from typing import Any

from clarion.campaign.schemas import Content

# 3993 bytes: the 4096-byte body limit (RFC 8030 §7.2) minus the 86-byte aes128gcm header, the 16-byte
# tag and the 1-byte padding delimiter (RFC 8291 §4).
MAX_PAYLOAD_BYTES = 3993
# The widest id a campaign can have, used to size a payload before the campaign has its id.
WIDEST_CAMPAIGN_ID = "9" * 19


def build(campaign_id: str, content: Content, display_time_s: int, push_tag: str | None) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "title": content.title,
        "message": content.message,
        "icon": content.icon,
        "image": content.image,
        "redirect_url": content.redirect_url,
        "buttons": [{"title": b.title, "url": b.url} for b in content.buttons],
        "display_time": display_time_s,
        "tag": push_tag,
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def fits(content: Content, display_time_s: int, push_tag: str | None) -> bool:
    widest = build(WIDEST_CAMPAIGN_ID, content, display_time_s, push_tag)
    return len(encode(widest)) <= MAX_PAYLOAD_BYTES

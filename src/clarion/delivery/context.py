"""What every recipient of one campaign shares, loaded once per campaign and cached by workers."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion.app_tenant import credentials
from clarion.campaign import payload as payloads
from clarion.campaign.schemas import Button, Content
from clarion.db import as_utc, utcnow
from clarion.models import App, Campaign
from clarion.provider.message import NativeButton, NativeMessage, message_from_json


@dataclass(frozen=True, slots=True)
class CampaignContext:
    campaign_id: int
    app_id: int
    content: Content
    payload: bytes
    ttl_s: int
    started_at: datetime
    urgency: str
    topic: str | None
    vapid_private_pem: str
    vapid_public_key: str
    # The app's native provider credentials (fcm, apns, wns, adm), as stored.
    credentials: dict[str, dict[str, Any]]
    # started_at + ttl_s, kept rather than computed: every recipient's send reads it.
    expires_at: datetime

    def remaining_ttl_s(self, now: datetime) -> int:
        """On a retry the push service is told what is left of the TTL, not the whole of it."""
        return max(0, int((self.expires_at - now).total_seconds()))

    def message_for(self, params: dict[str, Any] | None, now: datetime) -> NativeMessage:
        """A recipient's notification: its own (a Swrve batch's personalized one) or the campaign's."""
        if params is None:
            return self.native_message(now)
        message = message_from_json(params["message"])
        return replace(message, ttl_s=min(message.ttl_s, self.remaining_ttl_s(now)))

    def web_payload(self, message: NativeMessage | None) -> bytes:
        """What a browser's service worker receives: the campaign's, or a batch recipient's own."""
        if message is None:
            return self.payload
        return payloads.encode(
            {
                "campaign_id": message.campaign_id,
                "title": message.title or "",
                "message": message.message,
                "icon": message.icon,
                "image": message.image,
                "redirect_url": message.url,
                "buttons": [{"title": b.title, "url": b.action} for b in message.buttons if b.action],
                "display_time": 0,
                "tag": message.collapse_key,
                "data": message.data,
            }
        )

    def native_message(self, now: datetime) -> NativeMessage:
        """The campaign's content as a platform-neutral notification for FCM, APNs, WNS and ADM."""
        content = self.content
        return NativeMessage(
            campaign_id=str(self.campaign_id),
            message=content.message,
            title=content.title,
            icon=content.icon,
            image=content.image,
            url=content.redirect_url,
            buttons=tuple(NativeButton(b.title, "open_url", b.url) for b in content.buttons),
            ttl_s=self.remaining_ttl_s(now),
            collapse_key=self.topic,
            # A visible notification goes at high priority unless the campaign asked for less.
            high_priority=self.urgency in ("normal", "high"),
        )


def _content(stored: dict[str, object]) -> Content:
    buttons = stored.get("buttons") or []
    assert isinstance(buttons, list)
    return Content(
        message=str(stored["message"]),
        title=str(stored["title"]),
        redirect_url=str(stored["redirect_url"]),
        icon=stored.get("icon"),  # type: ignore[arg-type]
        image=stored.get("image"),  # type: ignore[arg-type]
        buttons=tuple(Button(str(b["title"]), str(b["url"])) for b in buttons),
    )


async def load(session: AsyncSession, campaign_id: int) -> CampaignContext | None:
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    app = await session.get(App, campaign.app_id)
    assert app is not None, "a campaign's app is deleted with it"
    content = _content(campaign.payload)
    body = payloads.build(str(campaign.id), content, campaign.display_time_s, campaign.push_tag)
    started_at = as_utc(campaign.started_at or campaign.send_at or utcnow())
    return CampaignContext(
        campaign_id=campaign.id,
        app_id=app.id,
        content=content,
        payload=payloads.encode(body),
        ttl_s=campaign.ttl_s,
        started_at=started_at,
        urgency=campaign.urgency,
        # push_tag doubles as the RFC 8030 Topic: a newer campaign with the same tag replaces an
        # older one still waiting at the push service for an offline device.
        topic=campaign.push_tag,
        vapid_private_pem=app.vapid_private_pem,
        vapid_public_key=app.vapid_public_key,
        credentials=await credentials.for_app(session, app.id),
        expires_at=started_at + timedelta(seconds=campaign.ttl_s),
    )


class ContextCache:
    """A small LRU: a worker handles chunks of a few campaigns at a time."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._items: OrderedDict[int, CampaignContext] = OrderedDict()

    async def get(self, session: AsyncSession, campaign_id: int) -> CampaignContext | None:
        if campaign_id in self._items:
            self._items.move_to_end(campaign_id)
            return self._items[campaign_id]
        context = await load(session, campaign_id)
        if context is not None:
            self._items[campaign_id] = context
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return context

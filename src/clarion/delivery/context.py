"""What every recipient of one campaign shares, loaded once per campaign and cached by workers."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import content
from clarion.app_tenant import credentials
from clarion.campaign.personal import MEMO_ENTRIES, Personal, RenderFailure
from clarion.campaign.repository import CampaignRepository
from clarion.campaign.timing import ReleasePlan
from clarion.content import Notification
from clarion.db import as_utc, utcnow
from clarion.delivery.repository import Claimed
from clarion.models import REST_GROUP, App, Campaign, FollowUp
from clarion.provider.outcome import Rejected

# The reason class of a recipient whose template failed (the ledger's reason starts with it).
TEMPLATE_FAILED = "template"


@dataclass(frozen=True, slots=True)
class CampaignContext:
    campaign_id: int
    app_id: int
    notification: Notification  # the campaign's own, with the whole TTL
    payload: bytes
    ttl_s: int
    started_at: datetime
    urgency: str
    topic: str | None
    vapid_private_pem: str
    vapid_public_key: str
    vapid_subject: str | None  # None: the server's CLARION_VAPID_SUBJECT
    # The app's native provider credentials (fcm, apns, wns, adm), as stored.
    credentials: dict[str, dict[str, Any]]
    # started_at + ttl_s, kept rather than computed: every recipient's send reads it.
    expires_at: datetime
    # No attempt after this (a Swrve batch's execution time limit), whatever the TTL still allows.
    give_up_at: datetime | None = None
    # Pacing (docs/pacing.md): messages per minute across every worker (None: no limit), and the
    # app's frequency cap (None: none), which only non-transactional campaigns count and obey.
    rate_per_minute: int | None = None
    frequency_cap: int | None = None
    frequency_cap_period_s: int | None = None
    # Per-language content and templates, compiled once here; None: every recipient gets `payload`.
    personal: Personal | None = None

    def render_for(self, recipient: Claimed) -> CampaignContext | Rejected:
        """The one place a recipient's own content is resolved: the campaign as this recipient is to
        get it (its language's content, its templates rendered over its profile), or why it cannot
        be sent (a template failed for it: its row ends rejected with the reason, the others go on).

        A Swrve batch recipient carries its own content (`params`) and is left to `message_for`."""
        if self.personal is None or recipient.params is not None:
            return self
        try:
            shown = self.personal.content_for(recipient.profile)
        except RenderFailure as failure:
            return Rejected(f"{TEMPLATE_FAILED}: {failure}")
        if shown is self.notification:
            return self
        # A notification rendered once for recipients alike (Personal's memo) is encoded once too.
        found = self._own.get(id(shown))
        if found is not None and found.notification is shown:
            return found
        own = replace(self, notification=shown, payload=content.web_payload(shown))
        if len(self._own) < MEMO_ENTRIES:
            self._own[id(shown)] = own  # holds `shown`, so its id stays its own
        return own

    # The app's VAPID keys from before a rotation: id -> (private PEM, public key).
    retired_vapid_keys: dict[int, tuple[str, str]] = field(default_factory=dict)
    # This campaign as recipients of one rendered notification get it, by that notification's id.
    _own: dict[int, CampaignContext] = field(default_factory=dict, init=False, repr=False, compare=False)

    def vapid_key(self, key_id: int | None) -> tuple[str, str]:
        """The key a subscription was made with; the current one when it is (or its key was dropped)."""
        if key_id is not None:
            retired = self.retired_vapid_keys.get(key_id)
            if retired is not None:
                return retired
        return self.vapid_private_pem, self.vapid_public_key

    # The declarative form of `payload` (Declarative Web Push), None when the campaign has no URL.
    declarative: bytes | None = None
    # An A/B campaign's variants (campaign/variants.py), by number: this context with its content.
    variants: dict[int, CampaignContext] = field(default_factory=dict)

    def variant(self, group: int) -> CampaignContext:
        """The context of a recipient's A/B group: its variant's (the rest's: the winner's, `group` less
        REST_GROUP)."""
        return self.variants.get(group % REST_GROUP, self)

    def remaining_ttl_s(self, now: datetime) -> int:
        """On a retry the push service is told what is left of the TTL, not the whole of it."""
        return min(self.ttl_s, max(0, int((self.expires_at - now).total_seconds())))

    def message_for(self, params: dict[str, Any] | None, now: datetime) -> Notification:
        """A recipient's notification: its own (a Swrve batch's personalized one) or the campaign's."""
        if params is None:
            return replace(self.notification, ttl_s=self.remaining_ttl_s(now))
        message = content.decode(params["message"])
        return replace(message, ttl_s=min(message.ttl_s, self.remaining_ttl_s(now)))

    def web_payload(self, message: Notification | None) -> bytes:
        """What a browser's service worker receives: the campaign's, or a batch recipient's own."""
        return self.payload if message is None else content.web_payload(message)

    def declarative_payload(self, message: Notification | None) -> bytes | None:
        """The declarative form of `web_payload`'s, for the subscriptions that are sent it."""
        return self.declarative if message is None else content.declarative_payload(message)


async def load(session: AsyncSession, campaign_id: int) -> CampaignContext | None:
    found = await CampaignRepository(session).get_with_app(campaign_id)
    if found is None:
        return None
    campaign, app = found
    deadline = await CampaignRepository(session).batch_deadline(campaign)
    started_at = as_utc(campaign.started_at or campaign.send_at or utcnow())
    if campaign.release_plan is not None:
        # Released zone by zone: the TTL runs from the last release, so the last zone gets all of it
        # (each message is still told at most the TTL: remaining_ttl_s).
        started_at = max(started_at, ReleasePlan.from_json(campaign.release_plan).last_at)
    # A follow-up (an update or retraction) goes out under the campaign it follows: its id (events are
    # counted there) and its tag, so that what is shown or still queued under that tag is replaced.
    shown_id = campaign.follows_id if campaign.follows_id is not None else campaign.id
    notification = replace(
        content.decode(campaign.payload),
        campaign_id=str(shown_id),
        ttl_s=campaign.ttl_s,
        # push_tag doubles as the collapse key (RFC 8030 Topic, FCM collapse_key, apns-collapse-id):
        # a newer campaign with the same tag replaces an older one still waiting for an offline device.
        # A follow-up without one takes its campaign's own tag (content.display_tag).
        collapse_key=campaign.push_tag
        if campaign.follows_id is None
        else content.display_tag(shown_id, campaign.push_tag),
        display_time_s=campaign.display_time_s,
        # A visible notification goes at high priority unless the campaign asked for less.
        high_priority=campaign.urgency in ("normal", "high"),
    )
    payload, declarative = content.web_payload(notification), content.declarative_payload(notification)
    if campaign.follow_up == FollowUp.RETRACT:
        notification, payload = _retraction(notification)
        declarative = None  # a declarative message is always shown: a retraction has nothing to show
    loaded = CampaignContext(
        campaign_id=campaign.id,
        app_id=app.id,
        notification=notification,
        payload=payload,
        ttl_s=campaign.ttl_s,
        started_at=started_at,
        urgency=campaign.urgency,
        # Every campaign's messages carry a Topic (RFC 8030 §5.4), so that its follow-up replaces one
        # still waiting at the push service.
        topic=content.display_tag(shown_id, notification.collapse_key),
        vapid_private_pem=credentials.vapid_private_pem(session, app),
        vapid_public_key=app.vapid_public_key,
        vapid_subject=credentials.vapid_subject(app),
        credentials=await credentials.for_app(session, app.id),
        expires_at=started_at + timedelta(seconds=campaign.ttl_s),
        give_up_at=None if deadline is None else as_utc(deadline),
        rate_per_minute=campaign.rate_per_minute,
        frequency_cap=_cap(campaign, app),
        frequency_cap_period_s=app.frequency_cap_period_s,
        personal=Personal.build(notification, campaign.personalization),
        retired_vapid_keys=await credentials.retired_vapid_keys(session, app),
        declarative=declarative,
    )
    return _with_variants(loaded, campaign.variants or [])


def _with_variants(loaded: CampaignContext, stored: list[dict[str, Any]]) -> CampaignContext:
    """Each variant's content in place of the campaign's, its payloads built once, as the campaign's."""
    for number, variant in enumerate(stored, start=1):
        shown = replace(
            content.decode(variant["payload"]),
            campaign_id=loaded.notification.campaign_id,
            ttl_s=loaded.notification.ttl_s,
            collapse_key=loaded.notification.collapse_key,
            display_time_s=loaded.notification.display_time_s,
            high_priority=loaded.notification.high_priority,
        )
        loaded.variants[number] = replace(
            loaded,
            notification=shown,
            payload=content.web_payload(shown),
            declarative=content.declarative_payload(shown),
            variants={},
            # A variant's content is its own: no per-language texts or templates (docs/ab-variants.md).
            personal=None,
        )
    return loaded


def _retraction(notification: Notification) -> tuple[Notification, bytes]:
    """A retraction: for native apps a silent data message naming what to remove, for Clarion's
    service worker the message that closes the notification shown under the tag."""
    tag = content.display_tag(notification.campaign_id, notification.collapse_key)
    data = {"clarion_retract": notification.campaign_id, "tag": tag}
    silent = replace(notification, silent=True, data=data)
    return silent, content.retract_payload(notification.campaign_id, tag)


def _cap(campaign: Campaign, app: App) -> int | None:
    """Transactional campaigns and Push API batches are never capped (docs/pacing.md)."""
    if campaign.is_transactional or campaign.push_campaign_id is not None:
        return None
    return app.frequency_cap if app.frequency_cap_period_s else None


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

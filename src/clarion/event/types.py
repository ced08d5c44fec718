"""The event types, stored as these exact strings (docs/webhooks.md lists what each one carries)."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    CAMPAIGN_STARTED = "campaign.started"
    CAMPAIGN_FINISHED = "campaign.finished"
    CAMPAIGN_CANCELLED = "campaign.cancelled"
    DELIVERY_SENT = "delivery.sent"
    DELIVERY_FAILED = "delivery.failed"
    DELIVERY_GONE = "delivery.gone"
    DELIVERY_EXPIRED = "delivery.expired"
    # Reserved for per-subscriber frequency caps (issue #16's pacing): nothing emits it yet.
    DELIVERY_CAPPED = "delivery.capped"
    ENGAGEMENT_RECEIVED = "engagement.received"
    ENGAGEMENT_CLICKED = "engagement.clicked"
    ENGAGEMENT_CLOSED = "engagement.closed"
    SUBSCRIBER_CREATED = "subscriber.created"
    SUBSCRIBER_DEACTIVATED = "subscriber.deactivated"
    SUBSCRIBER_TOKEN_REPLACED = "subscriber.token_replaced"  # noqa: S105 - an event name
    CREDENTIALS_REJECTED = "credentials.rejected"


# What the outbox stores for one recorded batch of one campaign's ledger outcomes: a single row whose
# data lists them; readers expand it into one `delivery.*` event per outcome (docs/webhooks.md).
DELIVERY_GROUP = "delivery.group"

# A ledger row's final status -> its event (`rejected` is a failure the push service gave a reason for).
DELIVERY_EVENTS = {
    "sent": EventType.DELIVERY_SENT,
    "failed": EventType.DELIVERY_FAILED,
    "rejected": EventType.DELIVERY_FAILED,
    "gone": EventType.DELIVERY_GONE,
    "expired": EventType.DELIVERY_EXPIRED,
    "capped": EventType.DELIVERY_CAPPED,
}

ENGAGEMENT_EVENTS = {
    "received": EventType.ENGAGEMENT_RECEIVED,
    "clicked": EventType.ENGAGEMENT_CLICKED,
    "closed": EventType.ENGAGEMENT_CLOSED,
}

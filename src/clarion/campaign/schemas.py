"""A campaign as the core knows it, independent of the API surface it came through."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from clarion.campaign.variants import AbTest
from clarion.models import CampaignStatus

# The platforms subscribers are on (the subscriber API's `platform`).
PLATFORMS: tuple[str, ...] = ("web", "android", "ios", "adm", "wns")
AudienceKind = Literal["all", "tokens", "aliases", "tags", "tags_segment"]
Association = Literal["AND", "AND_NOT", "OR", "OR_NOT"]
ASSOCIATIONS: tuple[str, ...] = ("AND", "AND_NOT", "OR", "OR_NOT")


@dataclass(frozen=True)
class Button:
    title: str
    url: str


@dataclass(frozen=True)
class Content:
    message: str
    title: str
    redirect_url: str
    icon: str | None = None
    image: str | None = None
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True)
class SegmentTerm:
    association: Association
    name: str


AttributeOp = Literal["equals", "exists", "in"]


@dataclass(frozen=True)
class AttributeCondition:
    """A subscriber attribute the audience requires: `key` equals one value, is one of `values`, or
    exists (`values` empty)."""

    key: str
    op: AttributeOp
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class AudienceSpec:
    kind: AudienceKind = "all"
    # tokens, aliases or tag names for those kinds
    values: tuple[str, ...] = ()
    terms: tuple[SegmentTerm, ...] = ()
    # a saved segment, by name (a string) or id (a number; campaign.service.find_segment), resolved to its
    # terms when the campaign is created
    segment: str | int | None = None
    # the platforms to send to (None: every platform Clarion delivers to)
    platforms: tuple[str, ...] | None = None
    # conditions on subscriber attributes, all of which a recipient meets (/v1)
    attributes: tuple[AttributeCondition, ...] = ()


@dataclass(frozen=True)
class Personalization:
    """What may make each recipient's content its own (campaign/personal.py): texts that are templates
    (/v1 and the console; Gravitec's and Swrve's texts never are) and content per language, the
    campaign's own `content` being the default language's."""

    templates: bool = False
    default_language: str | None = None
    languages: tuple[tuple[str, Content], ...] = ()


@dataclass(frozen=True)
class CampaignCreate:
    content: Content
    audience: AudienceSpec
    send_at: datetime | None  # None: now
    ttl_s: int
    display_time_s: int
    push_tag: str | None = None
    is_transactional: bool = False
    urgency: str = "normal"
    # "HH:MM" in each subscriber's zone, within 24 hours of send_at (campaign.timing); zones already
    # past it get it "tomorrow" or "now".
    local_time: str | None = None
    past_zones: Literal["tomorrow", "now"] = "tomorrow"
    rate_per_minute: int | None = None  # None: unthrottled (docs/pacing.md)
    personalization: Personalization | None = None
    # A/B variants (campaign/variants.py): the variants' contents replace `content` per recipient.
    ab_test: AbTest | None = None
    # Each recipient at its most engaged local hour (its clicks of the last 30 days), local_time for one
    # without clicks (campaign.timing.BestTime).
    best_time: bool = False


@dataclass(frozen=True)
class CampaignStats:
    campaign_id: int
    status: CampaignStatus
    send_at: datetime
    sent: int
    received: int
    clicked: int
    closed: int
    capped: int  # not sent: the app's frequency cap (docs/pacing.md); not on the Gravitec surface
    # What preparing its pictures found: {"field", "url", "reason"} for each that went out unprocessed.
    picture_warnings: list[dict[str, str]]


@dataclass(frozen=True)
class Funnel:
    """Where a campaign's recipients are: its ledger (and the rows retention folded), and engagement."""

    audience: int
    pending: int
    sent: int
    failed: int
    failed_by_reason: dict[str, int]
    gone: int
    expired: int
    cancelled: int
    capped: int  # not sent: the app's frequency cap was reached (not a failure)
    received: int
    clicked: int
    closed: int

    @staticmethod
    def _rate(part: int, whole: int) -> float:
        return round(part / whole, 4) if whole else 0.0

    @property
    def rates(self) -> dict[str, float]:
        """Delivery over the audience; engagement over what was sent."""
        return {
            "delivered": self._rate(self.sent, self.audience),
            "received": self._rate(self.received, self.sent),
            "clicked": self._rate(self.clicked, self.sent),
            "closed": self._rate(self.closed, self.sent),
        }

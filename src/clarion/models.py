"""All tables. Imports nothing from the feature packages."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false, true

from clarion.ids import new_campaign_id

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


# The states below are stored as these exact strings (String(16) columns, no CHECK constraint): renaming
# a value needs a migration of the stored rows. tests/test_states.py pins them.


class CampaignStatus(StrEnum):
    """A campaign's life: scheduled -> sending (claimed and fanned out) -> sent (nothing pending).

    The Gravitec surface renders it upper-case (`SENT`).
    """

    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # reserved: nothing sets it yet
    CANCELLED = "cancelled"  # by an operator while scheduled, sending or paused (delivery.cancel)
    # By an operator: before it started (not claimed until resumed) or while sending (delivery.pause).
    PAUSED = "paused"


class DeliveryStatus(StrEnum):
    """A ledger row's state: pending until an attempt ends it in one of the final states."""

    PENDING = "pending"
    SENT = "sent"
    GONE = "gone"  # the address is no longer valid: its subscriber is deactivated
    REJECTED = "rejected"  # the push service refused this message; retrying would not help
    EXPIRED = "expired"  # the next retry would fall past the campaign's TTL
    FAILED = "failed"  # still retryable after MAX_ATTEMPTS
    CAPPED = "capped"  # not sent: the app's frequency cap was reached for this subscriber (not a failure)


# A campaign is finished in these states: nothing of it will be sent any more.
# The reason of a ledger row that was pending when its campaign was cancelled: it ends `expired` (it was
# never sent, and will not be), and this reason tells it from one whose TTL ran out.
CANCELLED_REASON = "cancelled"
# The reason of a pending row handed back until its turn under a rate or a hold (delivery/pace.py): its
# next_attempt_at is its send time, and the claim that takes it then sends it without a new one.
PACED_REASON = "paced"

FINISHED_CAMPAIGN_STATUSES = (CampaignStatus.SENT, CampaignStatus.CANCELLED, CampaignStatus.FAILED)

# Where ledger retention counts the rows it deletes, by final status (a pending row is never folded).
FOLDED_COUNTERS: dict[DeliveryStatus, str] = {
    status: f"folded_{status.value}" for status in DeliveryStatus if status != DeliveryStatus.PENDING
}


class BatchStatus(StrEnum):
    """A Swrve-style batch: accepted (waiting for its processor) -> processed (recipients in the ledger)."""

    ACCEPTED = "accepted"
    PROCESSED = "processed"


class App(Base):
    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    app_key: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    identity_key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    vapid_private_pem: Mapped[str] = mapped_column(Text)
    vapid_public_key: Mapped[str] = mapped_column(String(128))
    plan: Mapped[str] = mapped_column(String(16), default="free")
    batch_push: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The Swrve identity key itself, not only its hash: verifying a device's `user_id_hash` (an HMAC
    # keyed with it, docs/security.md "Identity verification") needs the key. NULL for apps created
    # before migration 0007, which stored only the hash; `clarion apps update` can store it.
    identity_secret_key: Mapped[str | None] = mapped_column(Text)
    # Whether binding a device to a user id needs that HMAC: on for new apps, off for migrated ones.
    identity_verification: Mapped[bool] = mapped_column(Boolean, default=True, server_default=false())
    # Site settings (migration 0013): the site's address, and the icon a push without `icon` shows
    # (Gravitec: "Not specifying an icon will set the default icon of the site"); NULL: none.
    site_url: Mapped[str | None] = mapped_column(Text)
    default_icon: Mapped[str | None] = mapped_column(Text)
    # The `sub` of the app's VAPID tokens; None: its https site URL, else CLARION_VAPID_SUBJECT.
    vapid_subject: Mapped[str | None] = mapped_column(String(255))
    # The IANA zone of subscribers that gave none (migration 0017); NULL: UTC.
    default_timezone: Mapped[str | None] = mapped_column(String(64))
    # Quiet hours (migration 0020): a local-time window "HH:MM".."HH:MM" in which non-transactional
    # notifications are held until it ends (quiet_mode "hold") or dropped ("drop"); NULL: none.
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    quiet_mode: Mapped[str | None] = mapped_column(String(8))
    # Frequency capping (migration 0021, docs/pacing.md): at most frequency_cap non-transactional
    # notifications per subscriber in any frequency_cap_period_s; NULL: no cap.
    frequency_cap: Mapped[int | None] = mapped_column(Integer)
    frequency_cap_period_s: Mapped[int | None] = mapped_column(Integer)
    # The app's VAPID identity refused by a push service (BadJwtToken, VapidPkHashMismatch; migration
    # 0025): since when, why, and which service's origin; NULL: not failing. Cleared when the subject
    # changes. Web recipients at that origin are not sent to while it is set (docs/token-hygiene.md).
    vapid_failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    vapid_failing_reason: Mapped[str | None] = mapped_column(String(255))
    vapid_failing_origin: Mapped[str | None] = mapped_column(String(255))


class Subscriber(Base):
    __tablename__ = "subscribers"
    __table_args__ = (
        UniqueConstraint("app_id", "address_hash", name="uq_subscriber_address"),
        Index("ix_subscriber_app_alias", "app_id", "alias"),
        # Fan-out pages through an app's subscribers by id (keyset): without this, every page
        # scans and sorts the whole audience.
        Index("ix_subscriber_app_id", "app_id", "id"),
        Index("ix_subscriber_app_user", "app_id", "user_id"),
        # A push to a few tokens searches (app_id, reg_id) from the campaign's targets: with only
        # reg_id's unique index, SQLite's planner preferred walking the whole app by (app_id, id).
        Index("ix_subscriber_app_reg", "app_id", "reg_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    reg_id: Mapped[str] = mapped_column(String(64), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    # Endpoint URL (web) or device token / channel URI (native); hashed for a bounded unique index.
    address: Mapped[str] = mapped_column(Text)
    address_hash: Mapped[str] = mapped_column(String(64))
    p256dh: Mapped[str | None] = mapped_column(String(128))
    auth: Mapped[str | None] = mapped_column(String(64))
    alias: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(255))
    external_user_id: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When the address was last registered: APNs' Unregistered is ignored if it predates this.
    registered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The subscriber's IANA time zone and BCP 47 language, as its SDK or registration gave them
    # (migration 0017); NULL: unknown, so the app's default zone and the campaign's default language.
    timezone: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(16))
    # Campaigns in a row that could not reach this device (migration 0025): bumped by a delivery that
    # ended `expired` or `failed` after the push service kept failing, reset by one `sent`. The hygiene
    # job deactivates a subscriber at CLARION_HYGIENE_FAILURE_STREAK (docs/token-hygiene.md).
    failure_streak: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Why the hygiene job deactivated it (`failures` or `inactive`); NULL for any other reason.
    deactivated_reason: Mapped[str | None] = mapped_column(String(32))
    # The VAPID key its subscription was made with (migration 0025): a `vapid_keys` row, an app's key
    # before a rotation; NULL: the app's current key. Its messages are signed with that key.
    vapid_key_id: Mapped[int | None] = mapped_column(BigInteger)


class VapidKey(Base):
    """An app's VAPID key pair from before a rotation (migration 0025), kept while an active subscription
    made with it remains (docs/token-hygiene.md, "VAPID key rotation"); the current pair is the app's."""

    __tablename__ = "vapid_keys"
    __table_args__ = (Index("ix_vapid_key_app", "app_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    public_key: Mapped[str] = mapped_column(String(128))
    private_pem: Mapped[str] = mapped_column(Text)  # sealed (secrets_box)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When it stopped being the app's current key.
    retired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AppCredential(Base):
    """A native provider's credentials for one app (service account, .p8 key, client secret).

    Written by `clarion apps credentials`; read only by the delivery engine; never returned.
    """

    __tablename__ = "app_credentials"

    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16), primary_key=True)  # fcm | apns | wns | adm
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When these credentials last worked (a token obtained or signed by /v1's test, a message taken by the
    # service) and last failed, with the provider's reason (the test, or a delivery job's `channel:` refusal).
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_failure: Mapped[str | None] = mapped_column(String(255))
    # Refused by the provider as credentials (migration 0025): set once, by the first refusal, and
    # cleared when they are replaced or pass /v1's test; while set, nothing is sent with them.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failing_reason: Mapped[str | None] = mapped_column(String(255))


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("app_id", "name_folded", name="uq_tag_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    # The first spelling seen is kept; lookups go through the case-folded name.
    name: Mapped[str] = mapped_column(String(255))
    name_folded: Mapped[str] = mapped_column(String(255))


class SubscriberTag(Base):
    __tablename__ = "subscriber_tags"
    __table_args__ = (Index("ix_subscriber_tags_tag", "tag_id", "subscriber_id"),)

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)


class SubscriberAttribute(Base):
    """One key/value of a subscriber's attributes (#17; subscriber/attributes.py holds the limits).

    A table rather than a JSON column: an audience's `attribute equals / in` is an indexed lookup on
    both databases, and `exists` one primary-key probe per candidate."""

    __tablename__ = "subscriber_attributes"
    __table_args__ = (Index("ix_subscriber_attributes_key_value", "key", "value"),)

    subscriber_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("app_id", "name", name="uq_segment_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    tags_segment: Mapped[list[dict[str, str]]] = mapped_column(JSON)


class ScheduleStatus(StrEnum):
    """A recurring schedule: active (it starts its occurrences) <-> paused; ended (no occurrence left)
    and cancelled are final."""

    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"
    CANCELLED = "cancelled"


# The reason of a ledger row dropped by the app's quiet hours (quiet_mode "drop"): it ends `expired`.
QUIET_HOURS_REASON = "quiet_hours"


class Schedule(Base):
    """A recurring campaign: an RFC 5545 RRULE in a time zone; each occurrence is an ordinary campaign
    (campaigns.schedule_id, occurrence_at). next_at is the next occurrence in UTC (NULL once none is
    left); the scheduler that moves it on (a conditional UPDATE) is the one that starts it."""

    __tablename__ = "schedules"
    __table_args__ = (Index("ix_schedule_due", "status", "next_at"), Index("ix_schedule_app", "app_id", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # a ScheduleStatus
    rrule: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # DTSTART, in UTC
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    occurrences: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    template: Mapped[dict[str, Any]] = mapped_column(JSON)  # the campaign each occurrence makes
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        Index("ix_campaign_due", "status", "send_at"),
        Index("ix_campaign_app_created", "app_id", "created_at"),
        Index("ux_campaign_occurrence", "schedule_id", "occurrence_at", unique=True),
        Index("ix_campaign_follows", "follows_id"),
    )

    # Time-ordered 64-bit ids of the vendor's shape (ids.py), whichever surface creates the campaign;
    # rows from before keep their small autoincrement ids.
    id: Mapped[int] = mapped_column(BigId, primary_key=True, default=new_campaign_id)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # a CampaignStatus
    send_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ttl_s: Mapped[int] = mapped_column(Integer)
    display_time_s: Mapped[int] = mapped_column(Integer)
    push_tag: Mapped[str | None] = mapped_column(String(100))
    is_transactional: Mapped[bool] = mapped_column(Boolean, default=False)
    urgency: Mapped[str] = mapped_column(String(16), default="normal")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # How the audience is chosen: {"kind": "all"|"tokens"|"aliases"|"tags"|"tags_segment"}; the values
    # themselves live in campaign_targets so that resolution joins instead of building IN lists.
    audience: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Fan-out ownership: the scheduler that claimed the campaign holds it until fanout_lease_until, or
    # until it has cut the audience into fanout_slices (then NULL: each slice has its own lease).
    fanout_done: Mapped[bool] = mapped_column(Boolean, default=False)
    fanout_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A Swrve-style batch sends personalized content per recipient (Delivery.params) to the rows its
    # processor adds itself; it is tied to its Push API campaign for the counters.
    push_campaign_id: Mapped[int | None] = mapped_column(ForeignKey("push_campaigns.id", ondelete="CASCADE"))
    # Created through the Gravitec API, so it counts toward the free plan's 10 a day.
    counts_toward_quota: Mapped[bool] = mapped_column(Boolean, default=False, server_default=true())
    # Ledger retention: the rows of a finished campaign past CLARION_LEDGER_RETENTION_DAYS are deleted
    # and counted here by final status, so statistics read these plus the rows that remain.
    folded_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    folded_gone: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    folded_rejected: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    folded_expired: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    folded_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    folded_capped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When its first rows were folded: from then on a subscriber's row may be gone, so an engagement
    # event can no longer be checked against the ledger (refused as past retention).
    ledger_folded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What preparing its pictures found (pictures/service.py): NULL until they were prepared, then a
    # list of warnings ({"field", "url", "reason"}), empty when every picture was processed.
    picture_warnings: Mapped[list[dict[str, str]] | None] = mapped_column(JSON(none_as_null=True))
    # Local time (migration 0020): "HH:MM" in each subscriber's zone, within 24 hours of send_at; zones
    # already past it then get it "tomorrow" or "now" (past_zones). release_plan: each zone's release
    # instant (campaign.timing.ReleasePlan), fixed when the campaign is claimed (local time or quiet hours).
    local_time: Mapped[str | None] = mapped_column(String(5))
    past_zones: Mapped[str | None] = mapped_column(String(8))
    release_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # Best time: each recipient at its most engaged local hour (clicks of the last 30 days), local_time
    # for one without clicks (campaign.timing.BestTime).
    best_time: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The recurring schedule this campaign is one occurrence of (unique together: started once).
    schedule_id: Mapped[int | None] = mapped_column(BigInteger)
    occurrence_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Throttling (migration 0021, docs/pacing.md): messages per minute across every worker; NULL: as
    # fast as the workers and the push services allow.
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    # What makes each recipient's content its own (#17, campaign/personal.py): {"templates": bool,
    # "default_language": tag | None, "languages": {tag: content}}. NULL: one content for everyone
    # (campaigns.payload), as for every Gravitec, Swrve and test campaign.
    personalization: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # A follow-up (campaign/follow_up.py): the campaign it updates or retracts, sent to the subscribers
    # that campaign reached, under its id and tag so that a shown notification is replaced or closed.
    follows_id: Mapped[int | None] = mapped_column(BigId)
    follow_up: Mapped[str | None] = mapped_column(String(16))  # a FollowUp: update | retract
    # An A/B test (campaign/variants.py): [{"percent", "payload"}] per variant (payload: content.encode),
    # the holdout's percent, when the winner goes to the rest (seconds after the start) and which won.
    variants: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
    holdout_percent: Mapped[int | None] = mapped_column(SmallInteger)
    winner_after_s: Mapped[int | None] = mapped_column(Integer)
    winner_variant: Mapped[int | None] = mapped_column(SmallInteger)


# deliveries.variant of an A/B campaign's rest (the recipients in no variant and not held out).
REST_GROUP = 10
HOLDOUT_GROUP = 0
# deliveries.last_error of a held-out recipient (status expired: nothing is ever sent to it).
HOLDOUT_REASON = "holdout"


class FollowUp(StrEnum):
    UPDATE = "update"
    RETRACT = "retract"


class Picture(Base):
    """A processed notification picture, stored once under the SHA-256 of its bytes (pictures/)."""

    __tablename__ = "pictures"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # lowercase hex SHA-256 of data
    content_type: Mapped[str] = mapped_column(String(32))  # image/png | image/jpeg
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CampaignTarget(Base):
    """One value of a campaign's audience list (a token, an alias or a tag name)."""

    __tablename__ = "campaign_targets"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)


class Delivery(Base):
    """The ledger: one row per recipient of a campaign; campaign counters are derived from it."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id", name="uq_delivery_recipient"),
        Index("ix_delivery_sweep", "status", "lease_until"),
        Index("ix_delivery_campaign_status", "campaign_id", "status"),
        # Frequency capping reads a subscriber's recent sends (docs/pacing.md).
        Index("ix_delivery_subscriber", "subscriber_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Who may touch a pending row: with no owner it is queued (or waiting for its retry) and the
    # sweeper leaves it alone until lease_until; with an owner, a worker holds it until lease_until.
    # Past lease_until the sweeper queues it again: that is how a lost job or a dead worker's chunk
    # is picked up.
    owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Not to be attempted before this (a retry's back-off, honouring Retry-After).
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    best_hour: Mapped[int | None] = mapped_column(SmallInteger)  # best time: the local hour chosen
    # Per-recipient content (a Swrve batch's merged parameters and the user it was addressed as).
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # An A/B campaign's group (campaign/variants.py): 1-4 a variant, 0 the holdout (sent nothing),
    # REST_GROUP the rest waiting for the winner, REST_GROUP + k the rest sent the winner, variant k.
    # NULL for every other campaign.
    variant: Mapped[int | None] = mapped_column(SmallInteger)


class FanoutSlice(Base):
    """A range of subscriber ids of one campaign's audience, fanned out by whichever worker claims it.

    Its cursor is the ledger (the campaign's highest recipient within the range), so it holds no
    progress of its own; `owner` and `lease_until` work as on a ledger row: with no owner it is queued
    and left alone until lease_until, with one a worker holds it until then. Past it, the sweep queues
    it again.
    """

    __tablename__ = "fanout_slices"
    __table_args__ = (
        Index("ix_fanout_slice_sweep", "done", "lease_until"),
        Index("ix_fanout_slice_campaign", "campaign_id", "done"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    # Subscriber ids first_id..last_id, both included.
    first_id: Mapped[int] = mapped_column(BigInteger)
    last_id: Mapped[int] = mapped_column(BigInteger)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PushCampaign(Base):
    """A Swrve-style Push API campaign: its own push_key (stored hashed) and default content."""

    __tablename__ = "push_campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    push_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    message: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(String(1000))
    platform: Mapped[str] = mapped_column(String(16))  # all | ios | android | adm | wns | web
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Batch(Base):
    """One accepted POST /push_batch: its raw body is kept so processing survives a crash."""

    __tablename__ = "batches"
    __table_args__ = (
        Index("ix_batch_app_created", "app_id", "created_at"),
        Index("ix_batch_status", "status", "lease_until"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    push_campaign_id: Mapped[int] = mapped_column(ForeignKey("push_campaigns.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # a BatchStatus
    body: Mapped[str] = mapped_column(Text)
    identity_key_given: Mapped[bool] = mapped_column(Boolean)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    total_users: Mapped[int] = mapped_column(Integer, default=0)
    # Processing attempts: a batch whose processing keeps failing is given up, not retried forever.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deadline_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set when the campaign's ledger rows are folded (retention): the users reached, counted from the
    # rows before they went; the per-user warnings they gave were added to batch_reports then.
    sent_users: Mapped[int | None] = mapped_column(Integer)


class BatchReport(Base):
    """A warning or failure about one user of a batch, found while processing it."""

    __tablename__ = "batch_reports"

    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    user: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # warning | failure
    reason: Mapped[str] = mapped_column(Text)
    safe_to_resend: Mapped[bool] = mapped_column(Boolean)


class Event(Base):
    """Engagement reported by the SDK: counted once per subscriber, campaign and type."""

    __tablename__ = "events"
    # A best-time campaign reads each recipient's recent clicks.
    __table_args__ = (Index("ix_event_subscriber", "subscriber_id", "type", "created_at"),)

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Meta(Base):
    """Server-wide key/value state (the admin token's hash)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class IdempotencyKey(Base):
    """/v1: the first answer to a creating POST sent with an Idempotency-Key, replayed for 24 hours.

    `scope` is who sent it ("admin" or "app:ID"): one app's keys never meet another's. `fingerprint` is
    the SHA-256 of the method, path and body; `status` 0 while the first request is still running."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_created", "created_at"),)

    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OperatorRole(StrEnum):
    """What a console operator may do: a viewer reads, an editor also sends and edits sites' content,
    an admin also manages sites' credentials, sites themselves and operators."""

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"


class Operator(Base):
    """An operator account of the web console (`clarion users create`)."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Stored case-folded: one account per address however it is typed.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))  # Argon2id, PHC string
    role: Mapped[str] = mapped_column(String(16))  # an OperatorRole
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OperatorSession(Base):
    """A signed-in console session; the cookie carries the token, the table only its SHA-256."""

    __tablename__ = "operator_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    # The synchronizer token every form of this session carries (CSRF).
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PacingBucket(Base):
    """A shared limiter's state when the database is the store (pacing/limiter.py, docs/pacing.md):
    a throttled campaign's or a provider's next free send time, or a push service's hold after a 429.
    Redis holds the same keys when it is the queue."""

    __tablename__ = "pacing_buckets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    # Seconds since the epoch: when the next message may go (a rate), or until when none may (a hold).
    next_at: Mapped[float] = mapped_column(Float)


class AppEvent(Base):
    """What happened in an app (migration 0024): the outbox webhooks deliver from and the event feed reads.

    Written in the transaction of the change that causes it, only for apps that want events (a webhook
    endpoint or the feed switched on). `id` orders an app's events; readers leave the newest second
    unread so that on PostgreSQL a transaction committing a smaller id late is not passed over."""

    __tablename__ = "app_events"
    __table_args__ = (
        Index("ix_app_events_app", "app_id", "id"),
        Index("ix_app_events_occurred", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class EventFeed(Base):
    """An app whose event feed is switched on (`PUT /v1/apps/{app}/events/feed`): events are recorded
    for it even with no webhook endpoint."""

    __tablename__ = "event_feeds"

    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookEndpoint(Base):
    """A customer URL that receives an app's events, batched and signed (Standard Webhooks).

    Delivery walks the app's events in order with `cursor` (the last event id delivered or given up);
    a replay walks `replay_from`..`replay_to` first. Whoever claims the row (`owner`, `lease_until`)
    sends its next batch, so any number of workers share the endpoints."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        Index("ix_webhook_endpoints_app", "app_id"),
        Index("ix_webhook_endpoints_due", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(255))
    # Event types delivered; empty: every type.
    event_types: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Sealed (secrets_box); during a rotation the previous secret signs too until previous_until.
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    replay_from: Mapped[int | None] = mapped_column(BigInteger)
    replay_to: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(255))
    owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

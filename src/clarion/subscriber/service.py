"""Rules about subscribers: registration, unsubscription, alias, tags and engagement events."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors, validation
from clarion.app_tenant import service as apps
from clarion.attributes import MAX_ATTRIBUTES, check_changes, check_language, too_many
from clarion.campaign.repository import CampaignRepository
from clarion.db import as_utc, utcnow
from clarion.event import service as events
from clarion.event.types import ENGAGEMENT_EVENTS, EventType
from clarion.models import App, Subscriber
from clarion.subscriber import endpoint, proof
from clarion.subscriber.proof import AUTH_HEADER, SubscriptionCredentials
from clarion.subscriber.repository import SubscriberRepository
from clarion.subscriber.schemas import EventCreate, SubscriberCreate, SubscriberFilter
from clarion.validation import ascii_int

# Gravitec v3: alias and tag names are 1-255 symbols.
MAX_NAME_LENGTH = 255
# Tags one subscriber may hold, through any route: it bounds a subscriber's rows and what one
# anonymous browser can make the server store. (A subscriber has one alias: a column, not a list.)
MAX_TAGS_PER_SUBSCRIBER = 100


@dataclass(frozen=True)
class Registration:
    reg_id: str
    created: bool


def address_of(body: SubscriberCreate, push_hosts: frozenset[str]) -> str:
    """The subscriber's address (endpoint or token), checked: the one rule for every way in."""
    if body.platform == "web":
        if body.subscription is None:
            raise errors.InvalidField("subscription is required for web", field="subscription")
        sub = body.subscription
        endpoint.check_push_url(sub.endpoint, push_hosts, "subscription.endpoint")
        endpoint.check_p256dh(sub.keys.p256dh)
        endpoint.check_auth(sub.keys.auth)
        return sub.endpoint
    if body.token is None:
        raise errors.InvalidField(f"token is required for {body.platform}", field="token")
    if body.platform == "wns":
        endpoint.check_push_url(body.token, push_hosts, "token")
    return body.token


def address_hash(address: str) -> str:
    return hashlib.sha256(address.encode()).hexdigest()


async def register(
    session: AsyncSession,
    app: App,
    body: SubscriberCreate,
    push_hosts: frozenset[str],
    held_proof: str | None = None,
) -> Registration:
    """Register a device, or find it again; `held_proof` is the X-Clarion-Subscription-Auth header."""
    address = address_of(body, push_hosts)
    if body.timezone is not None:
        validation.time_zone(body.timezone, "timezone")
    language = None if body.language is None else check_language(body.language)
    verify_identity(session, app, body)  # before anything is written: a refused binding binds nothing
    repo = SubscriberRepository(session)
    key_id = await apps.vapid_key_id(session, app, body.vapid_public_key, "vapid_public_key")
    existing = await repo.by_address(app.id, address_hash(address))
    if existing is not None:
        _check_same_subscription(existing, body, held_proof)
        await _refresh(repo, existing, body, key_id)
        return Registration(existing.reg_id, created=False)
    now = utcnow()
    keys = body.subscription.keys if body.subscription else None
    subscriber = Subscriber(
        app_id=app.id,
        # 192 random bits: knowing the regId is what lets a browser act on its own subscription.
        reg_id=secrets.token_urlsafe(24),
        platform=body.platform,
        address=address,
        address_hash=address_hash(address),
        p256dh=keys.p256dh if keys else None,
        auth=keys.auth if keys else None,
        user_id=body.user_id,
        external_user_id=body.external_user_id,
        active=True,
        created_at=now,
        updated_at=now,
        registered_at=now,
        timezone=body.timezone,
        language=language,
        vapid_key_id=key_id,
    )
    if not await repo.insert_if_absent(subscriber):
        # A concurrent registration of the same address won the race: answer as a registration again.
        raced = await repo.by_address(app.id, subscriber.address_hash)
        if raced is None:
            raise errors.Unavailable("The subscriber could not be stored; try again")
        _check_same_subscription(raced, body, held_proof)
        return Registration(raced.reg_id, created=False)
    if await events.wants(session, app.id):
        stored = await repo.by_address(app.id, subscriber.address_hash)
        assert stored is not None, "inserted in this transaction"
        data = {events.SUBSCRIBER: stored.id, "platform": stored.platform}
        await events.record(session, app.id, EventType.SUBSCRIBER_CREATED, data)
    return Registration(subscriber.reg_id, created=True)


def identity_hash(key: str, user_id: str) -> str:
    """What the app's backend sends as `user_id_hash`: the lowercase hex HMAC-SHA256 of the id."""
    return hmac.new(key.encode(), user_id.encode(), "sha256").hexdigest()


def verify_identity(session: AsyncSession, app: App, body: SubscriberCreate) -> None:
    """Identity verification: a device is bound to a user id only with the HMAC of the id made with the
    app's identity key, which only the app's backend holds (docs/security.md, "Identity verification")."""
    if not app.identity_verification:
        return
    key = apps.identity_key(session, app)
    for user_id, given, field in (
        (body.user_id, body.user_id_hash, "user_id_hash"),
        (body.external_user_id, body.external_user_id_hash, "external_user_id_hash"),
    ):
        if user_id is None:
            continue
        # Compared even when the key or the hash is missing, so that every refusal costs the same.
        expected = identity_hash(key or "", user_id)
        matches = hmac.compare_digest((given or "").lower().encode(), expected.encode())
        if key is None or given is None or not matches:
            raise errors.IdentityNotVerified(
                f"{field} must be the HMAC-SHA256 of the id keyed with the app's identity key", field=field
            )


def _check_same_subscription(existing: Subscriber, body: SubscriberCreate, held_proof: str | None) -> None:
    """The same endpoint with other keys is another browser's claim on it, or a forgery: it must show
    the registered subscription's proof, else it could take the regId, alias and tags over and lock the
    real browser out (docs/sdk.md, "Registering again")."""
    if body.subscription is None:
        return  # a native token is its own proof
    keys = body.subscription.keys
    same = hmac.compare_digest(keys.auth.encode(), (existing.auth or "").encode())
    if same and keys.p256dh == existing.p256dh:
        return
    if not proof.holds(existing, held_proof):
        raise errors.Unauthorized(
            "This endpoint is registered already with other keys: send the registered subscription's "
            f"auth secret in the {AUTH_HEADER} header",
            field=AUTH_HEADER,
        )


async def _refresh(
    repo: SubscriberRepository, subscriber: Subscriber, body: SubscriberCreate, key_id: int | None
) -> None:
    sub = body.subscription
    keys = (sub.keys.p256dh, sub.keys.auth) if sub is not None else None
    now = utcnow()
    # The key a browser says it subscribed with replaces the one on record; no word leaves it.
    vapid_key = (key_id,) if body.vapid_public_key is not None else None
    await repo.reactivate(subscriber, now, keys, body.user_id, body.external_user_id, vapid_key)
    if body.timezone is not None and body.timezone != subscriber.timezone:
        await repo.set_timezone(subscriber, body.timezone, now)
    if body.language is not None:  # checked by `register`; absent: the language known stays
        await repo.set_language(subscriber, body.language)


async def active_counts(session: AsyncSession) -> dict[int, int]:
    """Active subscribers by app id (apps with none are absent)."""
    return await SubscriberRepository(session).active_counts()


async def platform_counts(session: AsyncSession, app: App) -> dict[tuple[str, bool], int]:
    """The app's subscribers by (platform, active)."""
    return await SubscriberRepository(session).platform_counts(app.id)


async def search(session: AsyncSession, app: App, text: str, limit: int) -> list[Shown]:
    """Subscribers by regId, alias or tag (newest first; every subscriber for an empty text)."""
    repo = SubscriberRepository(session)
    found = await repo.search(app.id, text.strip(), limit)
    tags = await repo.tag_names_of([subscriber.id for subscriber in found])
    return [Shown(subscriber, tags[subscriber.id]) for subscriber in found]


async def get(session: AsyncSession, app: App, reg_id: str) -> Subscriber:
    subscriber = await SubscriberRepository(session).by_reg_id(app.id, reg_id)
    if subscriber is None:
        raise errors.UnknownSubscriber()
    return subscriber


async def find(session: AsyncSession, app: App, reg_id: str) -> Subscriber | None:
    return await SubscriberRepository(session).by_reg_id(app.id, reg_id)


async def unsubscribe(session: AsyncSession, creds: SubscriptionCredentials) -> None:
    _, subscriber = await proof.authorise(session, creds, _no_such_subscriber)
    await SubscriberRepository(session).unsubscribe(subscriber, utcnow())
    await deactivated(session, subscriber, "unsubscribed")


async def deactivated(session: AsyncSession, subscriber: Subscriber, reason: str) -> None:
    data = {events.SUBSCRIBER: subscriber.id, "platform": subscriber.platform, "reason": reason}
    await events.record(session, subscriber.app_id, EventType.SUBSCRIBER_DEACTIVATED, data)


def _no_such_subscriber() -> errors.ClarionError:
    return errors.NotFound("There is no subscriber with this regId", field="regId")


async def set_alias(session: AsyncSession, app: App, reg_id: str, alias: str) -> None:
    await name_alias(session, await get(session, app, reg_id), alias)


async def name_alias(session: AsyncSession, subscriber: Subscriber, alias: str) -> None:
    """Set the alias of a subscriber already in hand."""
    check_alias(alias)
    await SubscriberRepository(session).name(subscriber, alias, utcnow())


def check_alias(alias: str) -> None:
    if len(alias) > MAX_NAME_LENGTH:
        raise errors.AliasTooLong()


def check_tag_name(name: str) -> None:
    """A tag is stored beside its case-folded form, and both must fit 255 symbols ("ß" folds to "ss")."""
    if len(name) > MAX_NAME_LENGTH or len(name.casefold()) > MAX_NAME_LENGTH:
        raise errors.AliasTooLong()


async def add_tag(session: AsyncSession, app: App, reg_id: str, name: str) -> None:
    await tag(session, await get(session, app, reg_id), name, field="name")


async def tag(session: AsyncSession, subscriber: Subscriber, name: str, field: str = "tag") -> None:
    """Tag a subscriber already in hand, creating the app's tag on first use.

    `field` names the input in the error when the subscriber holds MAX_TAGS_PER_SUBSCRIBER already.
    """
    check_tag_name(name)
    repo = SubscriberRepository(session)
    found = await repo.tag_by_name(subscriber.app_id, name)
    if found is not None and await repo.has_tag(subscriber.id, found.id):
        return
    if await repo.tag_count(subscriber.id) >= MAX_TAGS_PER_SUBSCRIBER:
        raise errors.InvalidField(
            f"{field}: a subscriber holds at most {MAX_TAGS_PER_SUBSCRIBER} tags", field=field
        )
    if found is None:
        # The first spelling is kept; a racing second spelling of the same tag is ignored.
        found = await repo.ensure_tag(subscriber.app_id, name)
    await repo.attach(subscriber.id, found.id)


async def attributes(session: AsyncSession, subscriber: Subscriber) -> dict[str, str]:
    return await SubscriberRepository(session).attributes(subscriber.id)


async def change_attributes(session: AsyncSession, subscriber: Subscriber, changes: Any) -> dict[str, str]:
    """Merge `changes` (key -> string to set, null to remove) into the subscriber's attributes, all or
    nothing; returns them as they now are. The limits: clarion.attributes (docs/personalization.md)."""
    checked = check_changes(changes)
    repo = SubscriberRepository(session)
    held = await repo.attributes(subscriber.id)
    after = {**held, **checked}
    if sum(value is not None for value in after.values()) > MAX_ATTRIBUTES:
        raise too_many(MAX_ATTRIBUTES)
    await repo.change_attributes(subscriber.id, checked)
    return {key: value for key, value in sorted(after.items()) if value is not None}


async def remove_tag(session: AsyncSession, app: App, reg_id: str, name: str) -> None:
    await untag(session, await get(session, app, reg_id), name)


async def untag(session: AsyncSession, subscriber: Subscriber, name: str) -> None:
    """Remove a tag from a subscriber already in hand; TagNotOnSubscriber when it does not have it."""
    check_tag_name(name)
    repo = SubscriberRepository(session)
    found = await repo.tag_by_name(subscriber.app_id, name)
    if found is None or not await repo.has_tag(subscriber.id, found.id):
        raise errors.TagNotOnSubscriber()
    await repo.detach(subscriber.id, found.id)


async def record_event(session: AsyncSession, app: App, body: EventCreate, held_proof: str | None) -> None:
    """Count an engagement event, proven by the subscriber's proof, for a campaign sent to it."""
    subscriber = await proof.prove(session, app, body.regId, held_proof, _no_subscriber_field)
    campaign_id = _campaign_id(body.campaign_id)
    # The ledger has a row for every recipient of a campaign: none, and it was not sent here.
    if not await SubscriberRepository(session).was_sent(campaign_id, subscriber.id):
        # Unless retention folded its rows away: then nobody can tell any more (docs/architecture.md).
        if await CampaignRepository(session).past_retention(app.id, campaign_id):
            raise errors.CampaignPastRetention(field="campaign_id")
        raise errors.InvalidField("There is no campaign with this id", field="campaign_id")
    # Counted once per subscriber, campaign and type: a repeated report is ignored.
    if await SubscriberRepository(session).add_event(campaign_id, subscriber.id, body.type, utcnow()):
        data = {
            "campaign_id": str(campaign_id),
            events.SUBSCRIBER: subscriber.id,
            "platform": subscriber.platform,
        }
        await events.record(session, app.id, ENGAGEMENT_EVENTS[body.type], data)


def _no_subscriber_field() -> errors.ClarionError:
    return errors.InvalidField("There is no subscriber with this regId", field="regId")


def _campaign_id(value: str) -> int:
    campaign_id = ascii_int(value)
    if campaign_id is None:
        raise errors.InvalidField("campaign_id must be a numeric id", field="campaign_id")
    return campaign_id


@dataclass(frozen=True)
class Shown:
    """A subscriber as an operator may see it: the endpoint's host only, never the address or keys."""

    subscriber: Subscriber
    tags: list[str]

    @property
    def endpoint_host(self) -> str | None:
        """The push service's host of a web endpoint or WNS channel; None for a device token."""
        if self.subscriber.platform not in ("web", "wns"):
            return None
        return urlsplit(self.subscriber.address).hostname

    @property
    def last_seen_at(self) -> datetime:
        """When the device last registered (the SDK registers again on each visit)."""
        return as_utc(self.subscriber.registered_at or self.subscriber.created_at)


async def listing(
    session: AsyncSession, app: App, wanted: SubscriberFilter, after_id: int, limit: int
) -> list[Shown]:
    repo = SubscriberRepository(session)
    page = await repo.page(app.id, wanted, after_id, limit)
    tags = await repo.tag_names_of([subscriber.id for subscriber in page])
    return [Shown(subscriber, tags[subscriber.id]) for subscriber in page]


async def _existing(session: AsyncSession, app: App, reg_id: str) -> Subscriber:
    """One of the app's subscribers, by its regId; another app's answers as an unknown one."""
    subscriber = await find(session, app, reg_id)
    if subscriber is None:
        raise errors.NotFound("There is no subscriber with this id in this app", field="subscriber_id")
    return subscriber


async def show(session: AsyncSession, app: App, reg_id: str) -> Shown:
    subscriber = await _existing(session, app, reg_id)
    return Shown(subscriber, await SubscriberRepository(session).tag_names(subscriber.id))


DAY_S = 86400


async def growth(session: AsyncSession, app: App, days: int) -> list[tuple[int, int]]:
    """New subscribers per UTC day over the last `days` days, today included: (day start as UNIX
    seconds, count), every day, those with none as 0."""
    today = int(utcnow().timestamp()) // DAY_S * DAY_S
    first = today - (days - 1) * DAY_S
    since = datetime.fromtimestamp(first, UTC)
    found = dict(await SubscriberRepository(session).growth(app.id, since, DAY_S))
    return [(day, found.get(day, 0)) for day in range(first, today + DAY_S, DAY_S)]


@dataclass(frozen=True)
class Received:
    """A campaign sent to a subscriber, and what became of it."""

    campaign_id: int
    title: str
    outcome: str
    at: datetime
    clicked: bool


async def received(session: AsyncSession, app: App, subscriber: Subscriber, campaigns: int) -> list[Received]:
    """Which of the app's newest `campaigns` campaigns went to the subscriber (while their ledger rows
    are kept: retention folds them into counters)."""
    rows = await SubscriberRepository(session).received(app.id, subscriber.id, campaigns)
    return [
        Received(campaign_id, str(payload.get("title") or ""), outcome, as_utc(at), clicked)
        for campaign_id, payload, outcome, at, clicked in rows
    ]


async def deactivate(session: AsyncSession, app: App, reg_id: str) -> Shown:
    """No campaign reaches it any more, until the device registers again."""
    subscriber = await _existing(session, app, reg_id)
    await SubscriberRepository(session).unsubscribe(subscriber, utcnow())
    await deactivated(session, subscriber, "deactivated")
    return await show(session, app, reg_id)


async def delete(session: AsyncSession, app: App, reg_id: str) -> None:
    """The subscriber with its tags, its ledger rows and its engagement events."""
    await SubscriberRepository(session).delete_one(await _existing(session, app, reg_id))


async def hygiene_counts(session: AsyncSession, app_id: int) -> dict[str, int]:
    """What the token hygiene job did to the app's subscribers, by reason, and how many active ones
    have failed at least one campaign in a row (`failing`)."""
    return await SubscriberRepository(session).hygiene_counts(app_id)


async def rotate_vapid(session: AsyncSession, app: App) -> dict[str, Any]:
    """A new VAPID key pair for the app. Subscriptions made with the old key keep being signed with it
    (the old key is kept, and dropped once no active subscription uses it); the Web SDK re-subscribes
    each browser with the new key on its next page view. Returns the progress (`vapid_progress`)."""
    retired_id = await apps.retire_vapid_key(session, app)
    await SubscriberRepository(session).mark_vapid_key(app.id, retired_id)
    return await apps.vapid_progress(session, app)

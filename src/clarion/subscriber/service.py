"""Rules about subscribers: registration, unsubscription, alias, tags and engagement events."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.db import utcnow
from clarion.models import App, Subscriber
from clarion.subscriber import endpoint
from clarion.subscriber.repository import SubscriberRepository
from clarion.subscriber.schemas import EventCreate, SubscriberCreate
from clarion.validation import ascii_int

# Gravitec v3: alias and tag names are 1-255 symbols.
MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class Registration:
    reg_id: str
    created: bool


def _address(body: SubscriberCreate, push_hosts: frozenset[str]) -> str:
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
    session: AsyncSession, app: App, body: SubscriberCreate, push_hosts: frozenset[str]
) -> Registration:
    address = _address(body, push_hosts)
    repo = SubscriberRepository(session)
    existing = await repo.by_address(app.id, address_hash(address))
    if existing is not None:
        _refresh(existing, body)
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
    )
    if not await repo.insert_if_absent(subscriber):
        # A concurrent registration of the same address won the race: answer with its regId.
        raced = await repo.by_address(app.id, subscriber.address_hash)
        if raced is None:
            raise errors.Unavailable("The subscriber could not be stored; try again")
        return Registration(raced.reg_id, created=False)
    return Registration(subscriber.reg_id, created=True)


def _refresh(subscriber: Subscriber, body: SubscriberCreate) -> None:
    subscriber.active = True
    subscriber.updated_at = subscriber.registered_at = utcnow()
    if body.subscription is not None:
        subscriber.p256dh = body.subscription.keys.p256dh
        subscriber.auth = body.subscription.keys.auth
    if body.user_id is not None:
        subscriber.user_id = body.user_id
    if body.external_user_id is not None:
        subscriber.external_user_id = body.external_user_id


async def get(session: AsyncSession, app: App, reg_id: str) -> Subscriber:
    subscriber = await SubscriberRepository(session).by_reg_id(app.id, reg_id)
    if subscriber is None:
        raise errors.UnknownSubscriber()
    return subscriber


async def find(session: AsyncSession, app: App, reg_id: str) -> Subscriber | None:
    return await SubscriberRepository(session).by_reg_id(app.id, reg_id)


async def unsubscribe(session: AsyncSession, app: App, reg_id: str) -> None:
    subscriber = await SubscriberRepository(session).by_reg_id(app.id, reg_id)
    if subscriber is None:
        raise errors.NotFound("There is no subscriber with this regId", field="regId")
    subscriber.active = False
    subscriber.updated_at = utcnow()


async def set_alias(session: AsyncSession, app: App, reg_id: str, alias: str) -> None:
    name_alias(await get(session, app, reg_id), alias)


def name_alias(subscriber: Subscriber, alias: str) -> None:
    """Set the alias of a subscriber already in hand."""
    if len(alias) > MAX_NAME_LENGTH:
        raise errors.AliasTooLong()
    subscriber.alias = alias
    subscriber.updated_at = utcnow()


def check_tag_name(name: str) -> None:
    """A tag is stored beside its case-folded form, and both must fit 255 symbols ("ß" folds to "ss")."""
    if len(name) > MAX_NAME_LENGTH or len(name.casefold()) > MAX_NAME_LENGTH:
        raise errors.AliasTooLong()


async def add_tag(session: AsyncSession, app: App, reg_id: str, name: str) -> None:
    await tag(session, await get(session, app, reg_id), name)


async def tag(session: AsyncSession, subscriber: Subscriber, name: str) -> None:
    """Tag a subscriber already in hand, creating the app's tag on first use."""
    check_tag_name(name)
    repo = SubscriberRepository(session)
    found = await repo.tag_by_name(subscriber.app_id, name)
    if found is None:
        # The first spelling is kept; a racing second spelling of the same tag is ignored.
        found = await repo.ensure_tag(subscriber.app_id, name)
    await repo.attach(subscriber.id, found.id)


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


async def record_event(session: AsyncSession, app: App, body: EventCreate) -> None:
    repo = SubscriberRepository(session)
    subscriber = await repo.by_reg_id(app.id, body.regId)
    if subscriber is None:
        raise errors.InvalidField("There is no subscriber with this regId", field="regId")
    campaign_id = _campaign_id(body.campaign_id)
    if not await repo.campaign_of_app(app.id, campaign_id):
        raise errors.InvalidField("There is no campaign with this id", field="campaign_id")
    # Counted once per subscriber, campaign and type: a repeated report is ignored.
    await repo.add_event(campaign_id, subscriber.id, body.type, utcnow())


def _campaign_id(value: str) -> int:
    campaign_id = ascii_int(value)
    if campaign_id is None:
        raise errors.InvalidField("campaign_id must be a numeric id", field="campaign_id")
    return campaign_id

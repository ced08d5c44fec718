"""Rules of the subscriber endpoints a browser or an app calls for its own subscriber (docs/sdk.md).

A caller proves it holds a subscription with the regId plus the subscription's proof: a browser's
`auth` secret, a native device's token (subscriber.proof, the one check shared with unsubscription and
engagement events). A wrong proof answers exactly like an unknown regId (401), so the answer tells
nothing about which regIds exist. Only `resubscribe` is for browsers alone (a native device registers
its new token instead).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.app_tenant import service as apps
from clarion.campaign import service as campaigns
from clarion.campaign.repository import CampaignRepository
from clarion.campaign.schemas import AudienceSpec, CampaignCreate, Content
from clarion.db import utcnow
from clarion.event import service as events
from clarion.event.types import EventType
from clarion.models import App, Campaign, Subscriber
from clarion.subscriber import endpoint, proof
from clarion.subscriber import service as subscribers
from clarion.subscriber.proof import AUTH_HEADER, SubscriptionCredentials
from clarion.subscriber.repository import SubscriberRepository
from clarion.subscriber.self_schemas import (
    AppInfo,
    AttributeMap,
    Resubscription,
    SubscriberView,
    TagList,
    TestNotificationCreate,
)

__all__ = ["AUTH_HEADER", "SubscriptionCredentials"]  # where the routes and the tests find them
# Test notifications: a tag of their own (a newer one replaces an older one on screen and at the push
# service), a short life (a test that arrives an hour later helps nobody), and one per subscriber per
# interval, so a page cannot turn the endpoint into a campaign generator.
TEST_PUSH_TAG = "clarion-test"
TEST_TTL_S = 300
TEST_DISPLAY_TIME_S = 60
TEST_INTERVAL_S = 10
TEST_TITLE = "Clarion test notification"
TEST_MESSAGE = "It works: this notification was sent to this browser alone."


async def authorise(session: AsyncSession, creds: SubscriptionCredentials) -> tuple[App, Subscriber]:
    return await proof.authorise(session, creds)


async def _view(session: AsyncSession, subscriber: Subscriber) -> SubscriberView:
    tags = await SubscriberRepository(session).tag_names(subscriber.id)
    return SubscriberView(
        regId=subscriber.reg_id, alias=subscriber.alias, tags=tags, active=subscriber.active
    )


async def app_info(session: AsyncSession, app_key: str) -> AppInfo:
    app = await apps.by_key(session, app_key)
    return AppInfo(app_key=app.app_key, vapid_public_key=app.vapid_public_key)


async def read(session: AsyncSession, creds: SubscriptionCredentials) -> SubscriberView:
    _, subscriber = await authorise(session, creds)
    return await _view(session, subscriber)


async def set_alias(session: AsyncSession, creds: SubscriptionCredentials, alias: str) -> SubscriberView:
    _, subscriber = await authorise(session, creds)
    await subscribers.name_alias(session, subscriber, alias)
    return await _view(session, subscriber)


async def tags(session: AsyncSession, creds: SubscriptionCredentials) -> TagList:
    _, subscriber = await authorise(session, creds)
    return TagList(tags=await SubscriberRepository(session).tag_names(subscriber.id))


async def add_tag(session: AsyncSession, creds: SubscriptionCredentials, name: str) -> SubscriberView:
    _, subscriber = await authorise(session, creds)
    await subscribers.tag(session, subscriber, name)
    return await _view(session, subscriber)


async def attributes(session: AsyncSession, creds: SubscriptionCredentials) -> AttributeMap:
    _, subscriber = await authorise(session, creds)
    return AttributeMap(attributes=await subscribers.attributes(session, subscriber))


async def change_attributes(
    session: AsyncSession, creds: SubscriptionCredentials, changes: dict[str, Any]
) -> AttributeMap:
    _, subscriber = await authorise(session, creds)
    return AttributeMap(attributes=await subscribers.change_attributes(session, subscriber, changes))


async def remove_tag(session: AsyncSession, creds: SubscriptionCredentials, name: str) -> SubscriberView:
    _, subscriber = await authorise(session, creds)
    await subscribers.untag(session, subscriber, name)
    return await _view(session, subscriber)


async def remove_all_tags(session: AsyncSession, creds: SubscriptionCredentials) -> SubscriberView:
    _, subscriber = await authorise(session, creds)
    await SubscriberRepository(session).detach_all(subscriber.id)
    return await _view(session, subscriber)


async def set_tags(session: AsyncSession, creds: SubscriptionCredentials, names: list[str]) -> SubscriberView:
    """Replace the subscriber's tags; all or nothing. Spellings of one tag count once."""
    _, subscriber = await authorise(session, creds)
    for name in names:
        subscribers.check_tag_name(name)
    await SubscriberRepository(session).detach_all(subscriber.id)
    unique: dict[str, str] = {}
    for name in names:
        unique.setdefault(name.casefold(), name)  # the first spelling in the list wins
    for name in unique.values():
        await subscribers.tag(session, subscriber, name)  # the subscriber in hand, not read again
    return await _view(session, subscriber)


async def resubscribe(
    session: AsyncSession, creds: SubscriptionCredentials, body: Resubscription, push_hosts: frozenset[str]
) -> SubscriberView:
    """Move a subscriber onto the browser's new subscription, keeping its regId, alias and tags."""
    app, subscriber = await authorise(session, creds)
    new = body.subscription
    # The same checks as a registration (subscriber.service).
    endpoint.check_push_url(new.endpoint, push_hosts, "subscription.endpoint")
    endpoint.check_p256dh(new.keys.p256dh)
    endpoint.check_auth(new.keys.auth)
    if subscriber.platform != "web":
        raise errors.InvalidField("Only web subscribers can resubscribe", field="regId")
    taken = errors.InvalidField(
        "subscription.endpoint: this subscription is registered already as another subscriber",
        field="subscription.endpoint",
    )
    new_hash = subscribers.address_hash(new.endpoint)
    moving = new_hash != subscriber.address_hash
    if moving and await SubscriberRepository(session).by_address(subscriber.app_id, new_hash) is not None:
        raise taken
    keys = (new.keys.p256dh, new.keys.auth)
    key_id = await apps.vapid_key_id(session, app, body.vapid_public_key, "vapid_public_key")
    if not await SubscriberRepository(session).move_address(
        subscriber, new.endpoint, new_hash, keys, utcnow(), key_id
    ):
        raise taken  # a registration of the same endpoint won a race
    if moving:
        data = {events.SUBSCRIBER: subscriber.id, "platform": subscriber.platform}
        await events.record(session, subscriber.app_id, EventType.SUBSCRIBER_TOKEN_REPLACED, data)
    return await _view(session, subscriber)


async def send_test(
    session: AsyncSession, creds: SubscriptionCredentials, body: TestNotificationCreate, default_url: str
) -> Campaign:
    """A one-recipient campaign to this subscriber; the engine delivers it like any other."""
    app, subscriber = await authorise(session, creds)
    if not subscriber.active:
        raise errors.InvalidField("This subscriber is not active; subscribe again first", field="regId")
    if body.redirect_url is not None and not body.redirect_url.startswith(("https://", "http://")):
        raise errors.InvalidField("redirect_url must be an http(s) URL", field="redirect_url")
    since = utcnow() - timedelta(seconds=TEST_INTERVAL_S)
    recent = await CampaignRepository(session).created_for_since(
        app.id, subscriber.reg_id, TEST_PUSH_TAG, since
    )
    if recent:
        raise errors.QuotaExceeded(f"One test notification per subscriber every {TEST_INTERVAL_S} seconds")
    content = Content(
        title=body.title or TEST_TITLE,
        message=body.message or TEST_MESSAGE,
        redirect_url=body.redirect_url or default_url,
    )
    spec = CampaignCreate(
        content=content,
        audience=AudienceSpec(kind="tokens", values=(subscriber.reg_id,)),
        send_at=None,
        ttl_s=TEST_TTL_S,
        display_time_s=TEST_DISPLAY_TIME_S,
        push_tag=TEST_PUSH_TAG,
    )
    return await campaigns.create(session, app, spec, api_quota=False)

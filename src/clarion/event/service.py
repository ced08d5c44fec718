"""Recording events with the change that causes them; webhook endpoints, replay and the feed.

Every feature records through `record` (one event) or `record_many` (a batch of ledger outcomes), in
its own transaction: the event commits with its cause or not at all. An app records events only when
it has a webhook endpoint or its feed switched on, checked in that same transaction (one indexed
query), so apps that want none pay one small query per batch and write nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.db import Database, as_utc, utcnow
from clarion.event import signing
from clarion.event.repository import EndpointRepository, Event, EventRepository, NewEvent
from clarion.event.types import DELIVERY_EVENTS, DELIVERY_GROUP, EventType
from clarion.models import WebhookEndpoint
from clarion.netpolicy import AddressPolicy
from clarion.secrets_box import box_of

# Readers leave events younger than this unread: on PostgreSQL ids are taken at INSERT and become
# visible at COMMIT, so a short transaction that took a smaller id may still be committing; the
# recorder's transactions last milliseconds, so a second is a wide margin.
SETTLE_S = 1.0
FEED_PAGE = 100
FEED_MAX_PAGE = 1000
COUNT_PAGE = 1000
MAX_ID = 2**63 - 1  # a BIGINT
# How often a long-poll looks again.
POLL_EVERY_S = 0.25
# The longest a rotated-out secret keeps signing, and its default.
ROTATION_MAX_S = 7 * 86400
ROTATION_DEFAULT_S = 86400
URL_CHARS = 2048
# Events store the subscriber's row id (what the ledger has at hand: no look-up on the send path);
# readers show its regId instead.
SUBSCRIBER = "subscriber"


def settled(now: datetime) -> datetime:
    return now - timedelta(seconds=SETTLE_S)


async def record(session: AsyncSession, app_id: int, type: EventType, data: dict[str, Any]) -> None:
    """Record one event in the caller's transaction (nothing when the app wants no events)."""
    await record_many(session, [(app_id, type, utcnow(), data)])


async def wants(session: AsyncSession, app_id: int) -> bool:
    """Whether the app records events (for a caller that must do work to describe one)."""
    return bool(await EventRepository(session).wanting([app_id]))


async def record_many(session: AsyncSession, rows: Sequence[NewEvent]) -> None:
    """Record a batch of events in one INSERT, keeping only the apps that want events."""
    if not rows:
        return
    repo = EventRepository(session)
    wanting = await repo.wanting({row[0] for row in rows})
    kept = [row for row in rows if row[0] in wanting]
    if kept:
        await repo.add(kept)


# The outcomes of one recorded batch, per (app, campaign): [subscriber row id, platform, status, reason].
Outcomes = dict[tuple[int, int], list[list[Any]]]


def delivery_ended(
    outcomes: Outcomes, recipient: tuple[int, int, int, str], status: str, reason: str | None
) -> None:
    """Note a ledger row's final state (app, campaign, subscriber row id, platform) for its events.

    The send path's whole share of events: one list append per message."""
    app_id, campaign_id, subscriber_id, platform = recipient
    if status in DELIVERY_EVENTS:
        outcomes.setdefault((app_id, campaign_id), []).append([subscriber_id, platform, status, reason])


def delivery_groups(outcomes: Outcomes, at: datetime) -> list[NewEvent]:
    """One outbox row per campaign of the batch (one INSERT row for up to 64 outcomes, not 64)."""
    return [
        (app_id, DELIVERY_GROUP, at, {"campaign_id": str(campaign_id), "outcomes": listed})
        for (app_id, campaign_id), listed in outcomes.items()
    ]


def campaign_finished(app_id: int, campaign_id: int, at: datetime) -> NewEvent:
    return (app_id, EventType.CAMPAIGN_FINISHED, at, {"campaign_id": str(campaign_id)})


def expand(row: Event) -> list[tuple[str, str, datetime, dict[str, Any]]]:
    """An outbox row as its events: (id, type, time, data with the subscriber's row id), in order.
    Ids are `ROW-N`: the row's id and the event's place in it."""
    if row.type != DELIVERY_GROUP:
        return [(f"{row.id}-0", row.type, row.occurred_at, row.data)]
    found: list[tuple[str, str, datetime, dict[str, Any]]] = []
    campaign_id = row.data["campaign_id"]
    for subscriber_id, platform, status, reason in row.data["outcomes"]:
        data = {"campaign_id": campaign_id, SUBSCRIBER: subscriber_id, "platform": platform}
        found.append(
            (
                f"{row.id}-{len(found)}",
                DELIVERY_EVENTS[status],
                row.occurred_at,
                {**data, "status": status, "reason": reason},
            )
        )
        if status == "gone":
            gone = {SUBSCRIBER: subscriber_id, "platform": platform, "reason": "gone"}
            found.append((f"{row.id}-{len(found)}", EventType.SUBSCRIBER_DEACTIVATED, row.occurred_at, gone))
    return found


def stored_types(wanted: Sequence[str]) -> list[str]:
    """The outbox rows' types that may hold events of the wanted types (none wanted: every type)."""
    if not wanted:
        return []
    grouped = set(DELIVERY_EVENTS.values()) | {EventType.SUBSCRIBER_DEACTIVATED}
    return sorted({*wanted, DELIVERY_GROUP} if grouped & set(wanted) else set(wanted))


async def bodies(
    session: AsyncSession, rows: Sequence[Event], wanted: Sequence[str], limit: int
) -> tuple[int | None, list[dict[str, Any]]]:
    """The rows' events as shown (of the wanted types; whole rows, until `limit` is reached), with
    subscribers named by their regIds (/v1's `id`, one query; a deleted one: null); and the id of the
    last row they cover (None: no row)."""
    kept: list[tuple[str, str, datetime, dict[str, Any]]] = []
    through = None
    for row in rows:
        if kept and len(kept) >= limit:
            break
        kept.extend(event for event in expand(row) if not wanted or event[1] in wanted)
        through = row.id
    ids = {data[SUBSCRIBER] for _, _, _, data in kept if SUBSCRIBER in data}
    reg_ids = await EventRepository(session).reg_ids(ids) if ids else {}
    return through, [_shown(event, reg_ids) for event in kept]


def _shown(event: tuple[str, str, datetime, dict[str, Any]], reg_ids: dict[int, str]) -> dict[str, Any]:
    event_id, type, at, data = event
    if SUBSCRIBER in data:
        data = dict(data)
        data = {"subscriber_id": reg_ids.get(data.pop(SUBSCRIBER)), **data}
    return {
        "id": event_id,
        "type": type,
        "timestamp": as_utc(at).isoformat().replace("+00:00", "Z"),
        "data": data,
    }


# The feed.


@dataclass(frozen=True, slots=True)
class FeedPage:
    events: list[dict[str, Any]]
    next_cursor: str


def parse_cursor(text: str | None) -> int:
    if text is None or text == "":
        return 0
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > MAX_ID:
        raise errors.InvalidField("after: a cursor is a `next_cursor` this feed gave", field="after")
    return int(text)


async def feed(session: AsyncSession, app_id: int, after: int, limit: int) -> FeedPage:
    """The app's events after the cursor, oldest first; the cursor to ask with next."""
    rows = await EventRepository(session).after(app_id, after, settled(utcnow()), limit)
    through, events = await bodies(session, rows, (), limit)
    return FeedPage(events, str(after if through is None else through))


async def poll(db: Database, app_id: int, after: int, limit: int, wait_s: float) -> FeedPage:
    """`feed`, waiting up to `wait_s` for an event when there is none yet (a long-poll). Each look is
    its own short transaction: a snapshot held open would never see the events committed meanwhile."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + wait_s
    while True:
        async with db.session() as session:
            page = await feed(session, app_id, after, limit)
        if page.events or loop.time() >= give_up_at:
            return page
        await asyncio.sleep(min(POLL_EVERY_S, max(0.0, give_up_at - loop.time())))


async def switch_feed(session: AsyncSession, app_id: int, on: bool) -> None:
    await EventRepository(session).switch_feed(app_id, on, utcnow())


async def feed_on(session: AsyncSession, app_id: int) -> bool:
    return await EventRepository(session).feed_on(app_id)


async def outbox(session: AsyncSession) -> tuple[int, datetime | None]:
    """The outbox's depth (events waiting, once per endpoint) and its oldest waiting event's time."""
    return await EventRepository(session).backlog()


# Webhook endpoints.


def check_url(url: str, policy: AddressPolicy) -> str:
    """An http(s) URL without credentials; a literal address the outbound policy refuses is refused
    now (a name is judged at every connection, after DNS, by provider/guard.py)."""
    if len(url) > URL_CHARS:
        raise errors.InvalidField(f"url: at most {URL_CHARS} characters", field="url")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        raise errors.InvalidField("url: not a URL", field="url") from None
    if parts.scheme not in ("http", "https") or not host:
        raise errors.InvalidField("url: an http or https URL with a host", field="url")
    if parts.username is not None or parts.password is not None:
        raise errors.InvalidField("url: credentials in the URL are not accepted", field="url")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return url
    if not policy.allows(host, address):
        raise errors.InvalidField(
            f"url: {address} is refused by the outbound address policy (CLARION_OUTBOUND_ALLOW)", field="url"
        )
    return url


def check_types(types: Sequence[str]) -> list[str]:
    known = {member.value for member in EventType}
    for name in types:
        if name not in known:
            raise errors.InvalidField(f"event_types: unknown event type {name!r}", field="event_types")
    return sorted(set(types))


def _where(endpoint_app: int) -> str:
    return f"webhook_endpoints:app:{endpoint_app}"


@dataclass(frozen=True, slots=True)
class Created:
    endpoint: WebhookEndpoint
    secret: str


async def create_endpoint(
    session: AsyncSession,
    app_id: int,
    url: str,
    types: Sequence[str],
    description: str | None,
    enabled: bool,
    policy: AddressPolicy,
) -> Created:
    """A new endpoint, delivered the events recorded from now on; its secret is shown once."""
    secret = signing.new_secret()
    now = utcnow()
    repo = EndpointRepository(session)
    endpoint = WebhookEndpoint(
        app_id=app_id,
        url=check_url(url, policy),
        description=description,
        event_types=check_types(types),
        enabled=enabled,
        secret=box_of(session).seal(secret, _where(app_id)),
        created_at=now,
        cursor=await repo.last_event_id(app_id),
        attempts=0,
        next_attempt_at=now,
    )
    return Created(await repo.add(endpoint), secret)


async def get_endpoint(session: AsyncSession, app_id: int, endpoint_id: int) -> WebhookEndpoint:
    endpoint = await EndpointRepository(session).get(app_id, endpoint_id)
    if endpoint is None:
        raise errors.NotFound(f"There is no webhook endpoint {endpoint_id} in this app", field="webhook_id")
    return endpoint


async def endpoints(
    session: AsyncSession, app_id: int, after: int | None, limit: int
) -> list[WebhookEndpoint]:
    return await EndpointRepository(session).listing(app_id, after, limit)


@dataclass(frozen=True, slots=True)
class EndpointState:
    """An endpoint with its delivery state, as the console shows it."""

    endpoint: WebhookEndpoint
    # Outbox rows recorded after its cursor: events not yet sent (a campaign's delivery outcomes of
    # one recorded batch share a row), before its filter; what clarion_outbox_depth counts.
    waiting: int
    # When the last event it got past (delivered, or given up after 24 hours) was recorded (None: none
    # since it was added).
    delivered_through: datetime | None


async def endpoint_states(session: AsyncSession, app_id: int, limit: int) -> list[EndpointState]:
    """The app's first `limit` endpoints with their delivery state (two queries)."""
    repo = EndpointRepository(session)
    found = await repo.listing(app_id, None, limit)
    waiting = await repo.waiting(app_id) if found else {}
    states = []
    for endpoint in found:
        count, through = waiting.get(endpoint.id, (0, None))
        states.append(EndpointState(endpoint, count, None if through is None else as_utc(through)))
    return states


async def update_endpoint(
    session: AsyncSession, app_id: int, endpoint_id: int, changes: dict[str, Any], policy: AddressPolicy
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, app_id, endpoint_id)
    values = dict(changes)
    for name in ("url", "event_types", "enabled"):
        if name in values and values[name] is None:
            raise errors.InvalidField(f"{name}: may be left out, not null", field=name)
    if "url" in values:
        values["url"] = check_url(values["url"], policy)
    if "event_types" in values:
        values["event_types"] = check_types(values["event_types"])
    if "enabled" in values:
        # Switched on or off: from a clean slate of failures, tried at once.
        values.update(attempts=0, failing_since=None, next_attempt_at=utcnow())
    return await EndpointRepository(session).change(endpoint, values)


async def delete_endpoint(session: AsyncSession, app_id: int, endpoint_id: int) -> None:
    await EndpointRepository(session).delete(await get_endpoint(session, app_id, endpoint_id))


async def rotate_secret(
    session: AsyncSession, app_id: int, endpoint_id: int, overlap_s: int
) -> tuple[WebhookEndpoint, str]:
    """A new secret; the current one keeps signing beside it for `overlap_s` (0: stops now)."""
    if not 0 <= overlap_s <= ROTATION_MAX_S:
        raise errors.InvalidField(f"overlap_s: from 0 to {ROTATION_MAX_S}", field="overlap_s")
    endpoint = await get_endpoint(session, app_id, endpoint_id)
    secret = signing.new_secret()
    values = {
        "previous_secret": endpoint.secret if overlap_s else None,
        "previous_until": utcnow() + timedelta(seconds=overlap_s) if overlap_s else None,
        "secret": box_of(session).seal(secret, _where(app_id)),
    }
    return await EndpointRepository(session).change(endpoint, values), secret


def signing_secrets(session: AsyncSession, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign a request now: the current one, and the previous during its overlap."""
    box = box_of(session)
    found = [box.open(endpoint.secret, _where(endpoint.app_id))]
    until = endpoint.previous_until
    if endpoint.previous_secret is not None and until is not None and as_utc(until) > now:
        found.append(box.open(endpoint.previous_secret, _where(endpoint.app_id)))
    return found


async def replay(
    session: AsyncSession, app_id: int, endpoint_id: int, since: datetime, until: datetime
) -> int:
    """Send the app's events of [since, until) to the endpoint again (its filter applies); how many
    events the range holds. A replay asked while one runs replaces it."""
    if until <= since:
        raise errors.InvalidField("until: after since", field="until")
    endpoint = await get_endpoint(session, app_id, endpoint_id)
    events = EventRepository(session)
    found = await events.id_range(app_id, since, until)
    if found is None:
        return 0
    first, last = found
    values = {"replay_from": first, "replay_to": last, "next_attempt_at": utcnow()}
    await EndpointRepository(session).change(endpoint, values)
    return await _count(events, app_id, first, last)


async def _count(events: EventRepository, app_id: int, first: int, last: int) -> int:
    """The events rows `first`..`last` hold (a page of rows at a time: a range may be large)."""
    total, cursor = 0, first - 1
    while rows := await events.after(app_id, cursor, utcnow(), COUNT_PAGE, upto=last):
        total += sum(len(expand(row)) for row in rows)
        cursor = rows[-1].id
    return total

"""All SQL of events, event feeds and webhook endpoints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from clarion.models import AppEvent, EventFeed, Subscriber, WebhookEndpoint

# One event to write: (app id, type, when, data).
NewEvent = tuple[int, str, datetime, dict[str, Any]]


class Event(NamedTuple):
    """One event as read."""

    id: int
    type: str
    occurred_at: datetime
    data: dict[str, Any]


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def wanting(self, app_ids: Iterable[int]) -> set[int]:
        """Which of these apps record events: those with a webhook endpoint or the feed switched on."""
        ids = list(app_ids)
        endpoints = select(WebhookEndpoint.app_id).where(WebhookEndpoint.app_id.in_(ids))
        feeds = select(EventFeed.app_id).where(EventFeed.app_id.in_(ids))
        return set((await self.session.scalars(endpoints.union(feeds))).all())

    async def add(self, rows: Sequence[NewEvent]) -> None:
        """One multi-row INSERT, whatever the number of events."""
        values = [{"app_id": a, "type": t, "occurred_at": at, "data": d} for a, t, at, d in rows]
        await self.session.execute(insert(AppEvent), values)

    def _after(self, app_id: int, cursor: int, settled: datetime, upto: int | None) -> list[Any]:
        where = [AppEvent.app_id == app_id, AppEvent.id > cursor, AppEvent.occurred_at <= settled]
        if upto is not None:
            where.append(AppEvent.id <= upto)
        return where

    async def after(
        self,
        app_id: int,
        cursor: int,
        settled: datetime,
        limit: int,
        upto: int | None = None,
        types: Sequence[str] = (),
    ) -> list[Event]:
        """The app's events after `cursor` (up to `upto`, of `types` when given) in order, none newer
        than `settled`; plain rows, not ORM objects (a batch reads hundreds)."""
        where = self._after(app_id, cursor, settled, upto)
        if types:
            where.append(AppEvent.type.in_(list(types)))
        columns = (AppEvent.id, AppEvent.type, AppEvent.occurred_at, AppEvent.data)
        query = select(*columns).where(*where).order_by(AppEvent.id).limit(limit)
        return [Event(*row) for row in (await self.session.execute(query)).all()]

    async def last_id(self, app_id: int, cursor: int, settled: datetime, upto: int | None = None) -> int:
        """The newest settled event id after `cursor` (`cursor` when there is none)."""
        query = select(func.max(AppEvent.id)).where(*self._after(app_id, cursor, settled, upto))
        return int(await self.session.scalar(query) or cursor)

    async def reg_ids(self, subscriber_ids: Iterable[int]) -> dict[int, str]:
        query = select(Subscriber.id, Subscriber.reg_id).where(Subscriber.id.in_(list(subscriber_ids)))
        return {int(row.id): row.reg_id for row in (await self.session.execute(query)).all()}

    async def id_range(self, app_id: int, since: datetime, until: datetime) -> tuple[int, int] | None:
        """The first and last ids of the app's events in [since, until), or None when there are none."""
        query = select(func.min(AppEvent.id), func.max(AppEvent.id)).where(
            AppEvent.app_id == app_id, AppEvent.occurred_at >= since, AppEvent.occurred_at < until
        )
        first, last = (await self.session.execute(query)).one()
        return None if first is None else (int(first), int(last))

    async def delete_before(self, horizon: datetime, limit: int) -> int:
        """Up to `limit` events older than the horizon; how many."""
        oldest = select(AppEvent.id).where(AppEvent.occurred_at < horizon).order_by(AppEvent.id).limit(limit)
        result = await self.session.execute(delete(AppEvent).where(AppEvent.id.in_(oldest)))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def switch_feed(self, app_id: int, on: bool, now: datetime) -> None:
        await self.session.execute(delete(EventFeed).where(EventFeed.app_id == app_id))
        if on:
            self.session.add(EventFeed(app_id=app_id, created_at=now))
            await self.session.flush()

    async def feed_on(self, app_id: int) -> bool:
        return bool(await self.session.scalar(select(exists().where(EventFeed.app_id == app_id))))

    async def backlog(self) -> tuple[int, datetime | None]:
        """Events not yet delivered to an enabled endpoint (counted once per endpoint) and the oldest
        one's time: the outbox's depth and age."""
        waiting = (
            select(func.count(AppEvent.id), func.min(AppEvent.occurred_at))
            .select_from(WebhookEndpoint)
            .join(AppEvent, AppEvent.app_id == WebhookEndpoint.app_id)
            .where(WebhookEndpoint.enabled.is_(True), AppEvent.id > WebhookEndpoint.cursor)
        )
        depth, oldest = (await self.session.execute(waiting)).one()
        return int(depth or 0), oldest


class EndpointRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, endpoint: WebhookEndpoint) -> WebhookEndpoint:
        self.session.add(endpoint)
        await self.session.flush()
        return endpoint

    async def last_event_id(self, app_id: int) -> int:
        """Where a new endpoint starts: after every event already recorded."""
        return int(
            await self.session.scalar(select(func.max(AppEvent.id)).where(AppEvent.app_id == app_id)) or 0
        )

    async def get(self, app_id: int, endpoint_id: int) -> WebhookEndpoint | None:
        query = select(WebhookEndpoint).where(
            WebhookEndpoint.app_id == app_id, WebhookEndpoint.id == endpoint_id
        )
        return (await self.session.scalars(query)).one_or_none()

    async def listing(self, app_id: int, after: int | None, limit: int) -> list[WebhookEndpoint]:
        query = select(WebhookEndpoint).where(WebhookEndpoint.app_id == app_id)
        if after is not None:
            query = query.where(WebhookEndpoint.id > after)
        return list((await self.session.scalars(query.order_by(WebhookEndpoint.id).limit(limit))).all())

    async def waiting(self, app_id: int) -> dict[int, tuple[int, datetime | None]]:
        """Per endpoint of the app: the outbox rows recorded after its cursor, and when the last row it
        got past (delivered or given up) was recorded (None: none since it was added); one query."""
        passed = aliased(AppEvent)
        query = (
            select(WebhookEndpoint.id, func.count(AppEvent.id), func.max(passed.occurred_at))
            .select_from(WebhookEndpoint)
            .outerjoin(
                AppEvent, (AppEvent.app_id == WebhookEndpoint.app_id) & (AppEvent.id > WebhookEndpoint.cursor)
            )
            # A new endpoint starts past the events already recorded: not ones it got past.
            .outerjoin(
                passed,
                (passed.id == WebhookEndpoint.cursor) & (passed.occurred_at >= WebhookEndpoint.created_at),
            )
            .where(WebhookEndpoint.app_id == app_id)
            .group_by(WebhookEndpoint.id)
        )
        return {int(row[0]): (int(row[1]), row[2]) for row in (await self.session.execute(query)).all()}

    async def change(self, endpoint: WebhookEndpoint, values: dict[str, Any]) -> WebhookEndpoint:
        for name, value in values.items():
            setattr(endpoint, name, value)
        await self.session.flush()
        return endpoint

    async def delete(self, endpoint: WebhookEndpoint) -> None:
        await self.session.delete(endpoint)
        await self.session.flush()

    async def claim_due(
        self, now: datetime, settled: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[int]:
        """Endpoints with something to send and nobody holding them, now held by `owner`."""
        waiting = exists().where(
            AppEvent.app_id == WebhookEndpoint.app_id,
            AppEvent.id > WebhookEndpoint.cursor,
            AppEvent.occurred_at <= settled,
        )
        due = (
            select(WebhookEndpoint.id)
            .where(
                WebhookEndpoint.enabled.is_(True),
                WebhookEndpoint.next_attempt_at <= now,
                or_(WebhookEndpoint.lease_until.is_(None), WebhookEndpoint.lease_until < now),
                or_(WebhookEndpoint.replay_from.is_not(None), waiting),
            )
            .order_by(WebhookEndpoint.next_attempt_at)
            .limit(limit)
        )
        claimed = []
        for endpoint_id in (await self.session.scalars(due)).all():
            # Conditional: another worker that claimed it between the select and here keeps it.
            result = await self.session.execute(
                update(WebhookEndpoint)
                .where(
                    WebhookEndpoint.id == endpoint_id,
                    or_(WebhookEndpoint.lease_until.is_(None), WebhookEndpoint.lease_until < now),
                )
                .values(owner=owner, lease_until=lease_until)
            )
            if result.rowcount:  # type: ignore[attr-defined]
                claimed.append(endpoint_id)
        return claimed

    async def held(self, endpoint_id: int, owner: str) -> WebhookEndpoint | None:
        query = select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.owner == owner
        )
        return (await self.session.scalars(query)).one_or_none()

    async def release(
        self, endpoint_id: int, owner: str, values: dict[str, Any], keep_until: datetime | None = None
    ) -> bool:
        """Write what the attempt changed and let go of the lease, or keep it until `keep_until` (more
        to send at once); False when the lease was lost meanwhile (nothing written)."""
        result = await self.session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.owner == owner)
            .values(**values, owner=owner if keep_until else None, lease_until=keep_until)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def reset_leases(self) -> None:
        await self.session.execute(update(WebhookEndpoint).values(owner=None, lease_until=None))

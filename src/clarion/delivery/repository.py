"""All SQL about the delivery ledger (the `deliveries` table, its only writer).

What a ledger operation changes elsewhere (a campaign marked sent, a gone subscriber deactivated) is
written by that table's own repository, called from here in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Table,
    any_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.campaign.repository import CampaignRepository
from clarion.db import insert_ignore, insert_ignore_from
from clarion.models import Delivery, DeliveryStatus, Subscriber
from clarion.subscriber.repository import SubscriberRepository

# The per-job statements (add, claim, finish) go through the Core tables, not the ORM entities:
# the same SQL without the ORM's per-statement compile and row-loading work (≈ 10 % of the event
# loop's time in the delivery benchmark, py-spy).
_deliveries: Table = Delivery.__table__  # type: ignore[assignment]  # declarative: always a Table
_subscribers: Table = Subscriber.__table__  # type: ignore[assignment]


# Rows of explicit values inserted per statement: a batch may name thousands of recipients.
ADD_ROWS_CHUNK = 500


def _new_row(campaign_id: int, now: datetime, queued_until: datetime) -> dict[str, Any]:
    """A recipient's first state in the ledger: pending, due now, left to the job that queues it."""
    return {
        "campaign_id": campaign_id,
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "lease_until": queued_until,
        "next_attempt_at": now,
        "updated_at": now,
    }


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery_id: int
    attempts: int
    subscriber_id: int
    platform: str
    address: str
    p256dh: str | None
    auth: str | None
    registered_at: datetime | None
    params: dict[str, Any] | None


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"

    def _one_of(self, column: ColumnElement[int], ids: Sequence[int]) -> ColumnElement[bool]:
        """`column` is one of `ids`, passed as one parameter rather than one per id.

        SQLAlchemy renders an IN list of a job's 500 ids as 500 parameters on every execution (on
        PostgreSQL with a cast each, and asyncpg prepares each distinct count anew): ≈ 8 % of a
        worker's event loop (py-spy). PostgreSQL takes an array (`= ANY`), SQLite a JSON array
        (`IN (SELECT value FROM json_each(?))`); either way one statement text.
        """
        if self._postgres:
            return column == any_(literal(list(ids), ARRAY(BigInteger)))
        values: Select[Any] = select(literal_column("value")).select_from(
            func.json_each(json.dumps(list(ids)))
        )
        return column.in_(values.scalar_subquery())

    async def fanout_cursor(self, campaign_id: int) -> int:
        """The ledger is its own fan-out cursor: recipients are added in subscriber id order."""
        query = select(func.max(Delivery.subscriber_id)).where(Delivery.campaign_id == campaign_id)
        return int((await self.session.execute(query)).scalar_one() or 0)

    async def add_page(
        self, campaign_id: int, page: Select[int], now: datetime, queued_until: datetime
    ) -> list[int]:
        """Add a page of the audience (a query of subscriber ids) to the ledger in one statement.

        INSERT … SELECT … RETURNING: the ids never pass through Python. Reading a page of ids and
        inserting rows of eight bound values cost ≈ 40 µs of CPU per recipient (delivery benchmark:
        3,900 -> 4,650 messages per CPU-second). Returns the new rows' ids in order; none once the
        audience is exhausted (or a concurrent fan-out added these recipients first).
        """
        if self._postgres:
            # asyncpg prepares statements, and after five runs PostgreSQL may switch to a generic
            # plan that cannot see the cursor's selectivity: measured, it tripled PostgreSQL's CPU
            # for a campaign (7.7 -> 18 CPU-s at N=100,000). Plan each page for its own cursor.
            await self.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        d = _deliveries.c
        new = _new_row(campaign_id, now, queued_until)
        subscriber_ids = page.subquery()
        rows = select(
            subscriber_ids.c.id, *(literal(value, d[name].type) for name, value in new.items())
        ).where(true())  # SQLite reads INSERT … SELECT … ON CONFLICT only with a WHERE before it
        columns = ["subscriber_id", *new]
        statement = insert_ignore_from(self.session, _deliveries, columns, rows).returning(d.id)
        return sorted((await self.session.execute(statement)).scalars())

    async def add_rows(
        self,
        campaign_id: int,
        recipients: Sequence[tuple[int, dict[str, Any]]],
        now: datetime,
        queued_until: datetime,
    ) -> None:
        """Add recipients that each carry their own parameters (a Swrve-style batch's users).

        The same new rows as `add_page`; a recipient already in the ledger is left as it is.
        """
        new = _new_row(campaign_id, now, queued_until)
        rows = [{**new, "subscriber_id": sid, "params": params} for sid, params in recipients]
        for start in range(0, len(rows), ADD_ROWS_CHUNK):
            await insert_ignore(self.session, _deliveries, rows[start : start + ADD_ROWS_CHUNK])

    async def claim(
        self, delivery_ids: Sequence[int], owner: str, now: datetime, lease_until: datetime
    ) -> list[Claimed]:
        """Take the still-pending, due, unheld rows of a job; a duplicate job finds nothing to take."""
        d, s = _deliveries.c, _subscribers.c
        await self.session.execute(
            update(_deliveries)
            .where(
                self._one_of(d.id, delivery_ids),
                d.status == DeliveryStatus.PENDING,
                d.next_attempt_at <= now,
                or_(d.owner.is_(None), d.lease_until < now),
            )
            .values(owner=owner, lease_until=lease_until, attempts=d.attempts + 1)
        )
        query = (
            select(d.id, d.attempts, s.id, s.platform, s.address, s.p256dh, s.auth, s.registered_at, d.params)
            .join_from(_deliveries, _subscribers, s.id == d.subscriber_id)
            .where(self._one_of(d.id, delivery_ids), d.owner == owner)
        )
        return [Claimed(*row) for row in (await self.session.execute(query)).all()]

    async def finish(
        self, delivery_ids: Sequence[int], status: DeliveryStatus, now: datetime, reason: str | None = None
    ) -> None:
        if not delivery_ids:
            return
        await self.session.execute(
            update(_deliveries)
            .where(self._one_of(_deliveries.c.id, delivery_ids))
            .values(status=status, owner=None, last_error=reason, updated_at=now)
        )

    async def retry_later(self, retries: Sequence[tuple[int, datetime, str]], now: datetime) -> None:
        """Rows (id, retry time, reason) back to no owner, each due again at its own time.

        One statement with a parameter set per row (an executemany: prepared once, one round trip
        on either driver), not one statement per row.
        """
        if not retries:
            return
        d = _deliveries.c
        statement = (
            update(_deliveries)
            .where(d.id == bindparam("row_id"))
            .values(
                owner=None,
                lease_until=bindparam("at"),
                next_attempt_at=bindparam("at"),
                last_error=bindparam("reason"),
                updated_at=now,
            )
        )
        rows = [{"row_id": delivery_id, "at": at, "reason": reason} for delivery_id, at, reason in retries]
        await self.session.execute(statement, rows)

    async def renew(self, delivery_ids: Sequence[int], owner: str, lease_until: datetime) -> None:
        """Extend the lease of the rows `owner` still holds (pending, not yet recorded) among these."""
        d = _deliveries.c
        await self.session.execute(
            update(_deliveries)
            .where(self._one_of(d.id, delivery_ids), d.owner == owner, d.status == DeliveryStatus.PENDING)
            .values(lease_until=lease_until)
        )

    async def release(self, delivery_ids: Sequence[int], now: datetime) -> None:
        """Give back rows claimed but not attempted (a shutdown): they are due again at once."""
        if not delivery_ids:
            return
        await self.session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), Delivery.status == DeliveryStatus.PENDING)
            .values(owner=None, lease_until=now, attempts=Delivery.attempts - 1)
            .execution_options(synchronize_session=False)
        )

    async def deactivate(self, subscriber_ids: Sequence[int], now: datetime) -> None:
        """Deactivate the subscribers whose address is gone, through their own repository."""
        await SubscriberRepository(self.session).deactivate(subscriber_ids, now)

    async def pending_ids(self, campaign_id: int) -> list[int]:
        query = select(Delivery.id).where(
            Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.PENDING
        )
        return list((await self.session.execute(query.order_by(Delivery.id))).scalars())

    async def has_pending(self, campaign_id: int) -> bool:
        query = select(Delivery.id).where(
            Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.PENDING
        )
        return (await self.session.execute(query.limit(1))).first() is not None

    async def lapsed(self, now: datetime, queued_until: datetime, limit: int) -> list[tuple[int, int]]:
        """Pending rows whose lease ran out (lost job, dead worker, retry due): queue them again."""
        query = (
            select(Delivery.id, Delivery.campaign_id)
            .where(Delivery.status == DeliveryStatus.PENDING, Delivery.lease_until < now)
            .order_by(Delivery.campaign_id, Delivery.id)
            .limit(limit)
        )
        rows = list((await self.session.execute(query)).all())
        if rows:
            await self.session.execute(
                update(Delivery)
                .where(
                    Delivery.id.in_([delivery_id for delivery_id, _ in rows]),
                    Delivery.status == DeliveryStatus.PENDING,
                    Delivery.lease_until < now,
                )
                .values(owner=None, lease_until=queued_until)
                .execution_options(synchronize_session=False)
            )
        return [(int(d), int(c)) for d, c in rows]

    async def reset_leases(self, now: datetime) -> None:
        """One process owns an in-memory queue: after its restart, nothing it held is held any more.

        The ledger's rows here; the campaigns' fan-out leases through CampaignRepository, in this
        transaction.
        """
        await self.session.execute(
            update(Delivery)
            .where(Delivery.status == DeliveryStatus.PENDING)
            .values(owner=None, lease_until=now)
            .execution_options(synchronize_session=False)
        )
        await CampaignRepository(self.session).reset_fanout_leases(now)

    async def release_queued(self, now: datetime) -> None:
        """The queue lost its jobs: rows waiting in it (no owner, left alone until a later time) are due.

        Rows a worker holds keep their lease (that worker is alive and sending them), and a row waiting
        for its retry keeps its time: a queued row's wait ends at its `next_attempt_at`, already past.
        """
        await self.session.execute(
            update(Delivery)
            .where(
                Delivery.status == DeliveryStatus.PENDING,
                Delivery.owner.is_(None),
                Delivery.lease_until > now,
            )
            .values(lease_until=Delivery.next_attempt_at)
            .execution_options(synchronize_session=False)
        )

    async def complete_if_done(self, campaign_id: int, now: datetime) -> bool:
        """Mark the campaign sent if its fan-out is done and nothing of it is pending here."""
        if await self.has_pending(campaign_id):
            return False
        return await CampaignRepository(self.session).complete_if_fanned_out(campaign_id, now)

    async def status_counts(self, campaign_id: int) -> dict[str, int]:
        """How many of the campaign's recipients are in each status (for its finishing log line)."""
        query = (
            select(Delivery.status, func.count())
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.status)
        )
        return {str(status): int(n) for status, n in (await self.session.execute(query)).all()}

    async def backlog(self, now: datetime) -> tuple[int, datetime | None]:
        """Rows pending in the whole ledger, and the oldest due time among those already due (for
        /metrics: the queue's depth and how long its oldest job has waited)."""
        due = Delivery.next_attempt_at <= now
        query = select(func.count(), func.min(case((due, Delivery.next_attempt_at)))).where(
            Delivery.status == DeliveryStatus.PENDING
        )
        count, oldest = (await self.session.execute(query)).one()
        return int(count), oldest

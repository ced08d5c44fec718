"""All SQL about the delivery ledger (the `deliveries` table, its only writer) and the fan-out's
slices (`fanout_slices`, SliceRepository).

What a ledger operation changes elsewhere (a campaign marked sent, a gone subscriber deactivated) is
written by that table's own repository, called from here in the same transaction.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    SmallInteger,
    Table,
    Update,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from clarion.campaign import variants as ab
from clarion.campaign.personal import Profile
from clarion.campaign.repository import CampaignRepository
from clarion.campaign.timing import BestTime, ReleasePlan
from clarion.campaign.variants import Split
from clarion.db import epoch_bucket, insert_ignore, insert_ignore_from
from clarion.models import (
    CANCELLED_REASON,
    HOLDOUT_GROUP,
    HOLDOUT_REASON,
    PACED_REASON,
    QUIET_HOURS_REASON,
    REST_GROUP,
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Event,
    FanoutSlice,
    Subscriber,
)
from clarion.subscriber.repository import SubscriberRepository

# The per-job statements (add, claim, finish) go through the Core tables, not the ORM entities:
# the same SQL without the ORM's per-statement compile and row-loading work (≈ 10 % of the event
# loop's time in the delivery benchmark, py-spy).
_deliveries: Table = Delivery.__table__  # type: ignore[assignment]  # declarative: always a Table
_subscribers: Table = Subscriber.__table__  # type: ignore[assignment]
_slices: Table = FanoutSlice.__table__  # type: ignore[assignment]
_events: Table = Event.__table__  # type: ignore[assignment]


# An arbitrary constant naming the frequency cap's PostgreSQL advisory locks (`serialize_cap`); the
# migrations' lock is a one-key lock of its own.
CAP_LOCK_SPACE = 0x43415021

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


# When a rest waiting for its A/B winner is due: never, until the winner is picked (then now).
_WAITING = datetime(9999, 1, 1, tzinfo=UTC)


def _split_of(
    campaign_id: int, subscriber_id: ColumnElement[int], split: Split
) -> tuple[ColumnElement[Any], ColumnElement[bool], ColumnElement[bool]]:
    """An A/B campaign's new row's group from its subscriber's bucket (campaign/variants.py), whether it
    is in the holdout, and whether it waits for the winner (the rest)."""
    at = (
        ((subscriber_id * literal(ab.MULTIPLIER, BigInteger) + ab.salt(campaign_id)) % ab.RING)
        * ab.PERCENT
        // ab.RING  # floor division: SQLAlchemy's / would be a true division
    )
    bounds = split.bounds()
    held = [upper for upper, number in bounds if number == HOLDOUT_GROUP]
    in_holdout = and_(at >= held[0] - split.holdout_percent, at < held[0]) if held else false()
    waits = at >= (bounds[-1][0] if bounds else 0)
    group = case(
        *((at < upper, literal(number, SmallInteger())) for upper, number in bounds),
        else_=literal(REST_GROUP, SmallInteger()),
    )
    return group, in_holdout, waits


def _grouped(
    campaign_id: int, subscriber_id: ColumnElement[int], split: Split, now: datetime, queued_until: datetime
) -> dict[str, ColumnElement[Any]]:
    """An A/B campaign's new rows: each recipient's group, the holdout ended at once (`expired`, reason
    holdout: sent nothing), the rest left pending until the winner is picked (neither due nor swept)."""
    d = _deliveries.c
    group, in_holdout, waits = _split_of(campaign_id, subscriber_id, split)
    due = case((waits, literal(_WAITING, d.next_attempt_at.type)), else_=literal(now, d.next_attempt_at.type))
    return {
        "variant": group,
        "status": case(
            (in_holdout, literal(DeliveryStatus.EXPIRED, d.status.type)),
            else_=literal(DeliveryStatus.PENDING, d.status.type),
        ),
        "last_error": case((in_holdout, literal(HOLDOUT_REASON, d.last_error.type)), else_=null()),
        "next_attempt_at": due,
        "lease_until": case(
            (waits, literal(_WAITING, d.lease_until.type)), else_=literal(queued_until, d.lease_until.type)
        ),
    }


class Claimed(NamedTuple):
    """A claimed ledger row with its subscriber; a tuple, made straight from the claim's result row
    (a ten-field frozen dataclass took 8.0 µs to build against the tuple's 0.6, timeit, loaded machine)."""

    delivery_id: int
    attempts: int
    subscriber_id: int
    platform: str
    address: str
    p256dh: str | None
    auth: str | None
    registered_at: datetime | None
    params: dict[str, Any] | None
    active: bool  # False: it unsubscribed (or went) since the fan-out added its row
    variant: int | None = None  # an A/B campaign's group (campaign/variants.py)
    vapid_key_id: int | None = None  # the retired VAPID key its subscription was made with (None: current)
    paced: bool = False  # its send time was given already (delivery.pace): it goes without another
    # Its subscriber's failure streak was above 0 when claimed: only then does a send write it back to 0
    # (an UPDATE of every reached subscriber read each one's table page per batch for nothing).
    failing: bool = False
    # What its personal content is made of (campaign/personal.py): loaded only for a campaign that has some.
    profile: Profile | None = None


def _ids_in(column: ColumnElement[int], postgres: bool, name: str) -> ColumnElement[bool]:
    """`column` is one of the ids bound as `name` (`_ids_value`): one parameter, not one per id.

    SQLAlchemy renders an IN list of a job's 500 ids as 500 parameters on every execution (on
    PostgreSQL with a cast each, and asyncpg prepares each distinct count anew): ≈ 8 % of a
    worker's event loop (py-spy). PostgreSQL takes an array (`= ANY`), SQLite a JSON array
    (`IN (SELECT value FROM json_each(?))`); either way one statement text.
    """
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(BigInteger)))
    values: Select[Any] = select(literal_column("value")).select_from(func.json_each(bindparam(name)))
    return column.in_(values.scalar_subquery())


def _by_id(column: ColumnElement[Any], postgres: bool) -> ColumnElement[Any]:
    """On SQLite, `column` behind a unary `+`: the same value, but a term the planner may not use an
    index for. A statement that names its rows by id (`_ids_in`) and also tests `status` was planned
    on ix_delivery_sweep's status prefix, reading every pending row of the ledger for each job's
    claim (EXPLAIN QUERY PLAN): O(pending) per job, 4.5x the claim's cost while a local-time
    campaign held its zones' rows pending. With the `+` the primary key is the only way in."""
    if postgres:
        return column
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


def _ids_value(postgres: bool, ids: Sequence[int]) -> list[int] | str:
    """The value bound for `_ids_in`: a list (PostgreSQL's array) or its JSON text (SQLite)."""
    if postgres:
        return list(ids)
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


# The statements run for every job and every batch of outcomes are built once per dialect and run
# with their values bound: building one anew cost its construction plus SQLAlchemy's cache-key walk
# on every execution (statement compilation and cache keys: ≈ 5 % of the GIL-holding samples of
# `clarion serve` in a campaign, py-spy --gil); a statement object kept memoizes its key. The bound
# names differ from the columns' (SQLAlchemy reserves those in SET).
@functools.cache
def _claim_statement(postgres: bool) -> Update:
    d = _deliveries.c
    now = bindparam("now", type_=d.lease_until.type)
    return (
        update(_deliveries)
        .where(
            _ids_in(d.id, postgres, "ids"),
            _by_id(d.status, postgres) == DeliveryStatus.PENDING,
            d.next_attempt_at <= now,
            or_(d.owner.is_(None), d.lease_until < now),
            # Nothing of a paused campaign is claimed (delivery/pause.py).
            ~select(Campaign.id)
            .where(Campaign.id == bindparam("campaign"), Campaign.status == CampaignStatus.PAUSED)
            .exists(),
        )
        .values(owner=bindparam("new_owner"), lease_until=bindparam("until"), attempts=d.attempts + 1)
        .returning(d.id)
    )


@functools.cache
def _claimed_rows(postgres: bool) -> Select[Any]:
    d, s = _deliveries.c, _subscribers.c
    return (
        select(d.id, d.attempts, s.id, s.platform, s.address, s.p256dh, s.auth, s.registered_at)
        .add_columns(
            d.params,
            s.active,
            d.variant,  # Claimed's order: its A/B group after `active` (lost in a merge once)
            s.vapid_key_id,
            case((d.last_error == PACED_REASON, True), else_=False),
            s.failure_streak > 0,
        )
        .join_from(_deliveries, _subscribers, s.id == d.subscriber_id)
        .where(_ids_in(d.id, postgres, "ids"))
        .order_by(d.id)
    )


@functools.cache
def _finish_statement(postgres: bool) -> Update:
    d = _deliveries.c
    return (
        update(_deliveries)
        .where(_ids_in(d.id, postgres, "ids"))
        .values(
            status=bindparam("new_status"),
            owner=None,
            last_error=bindparam("why"),
            updated_at=bindparam("at"),
        )
    )


@functools.cache
def _renew_statement(postgres: bool) -> Update:
    d = _deliveries.c
    return (
        update(_deliveries)
        .where(
            _ids_in(d.id, postgres, "ids"),
            _by_id(d.owner, postgres) == bindparam("holder"),
            _by_id(d.status, postgres) == DeliveryStatus.PENDING,
        )
        .values(lease_until=bindparam("until"))
    )


def _offset_case(zone: ColumnElement[Any], at: ColumnElement[Any], best: BestTime) -> ColumnElement[Any]:
    """The UTC offset (seconds) of the subscriber's zone at the time `at`: per group of zones, its
    latest segment that began by then."""

    def segments(values: tuple[tuple[datetime, int], ...], condition: Any) -> list[tuple[Any, Any]]:
        later = [(condition & (at >= since), literal(seconds)) for since, seconds in reversed(values[1:])]
        return [*later, (condition, literal(values[0][1]))]

    default = case(*segments(best.default_offsets, literal(True)))
    whens = [when for zones, values in best.offsets for when in segments(values, zone.in_(zones))]
    return case(*whens, else_=default) if whens else default


def _released_result(added: Sequence[Any]) -> tuple[list[int], int | None]:
    """A released page's rows due now (in id order), and the highest subscriber it added."""
    highest = max((int(subscriber_id) for _, subscriber_id, _ in added), default=None)
    return sorted(int(delivery_id) for delivery_id, _, due_now in added if due_now), highest


class ReleasedPages:
    """The pages of one fan-out step of a campaign with a release plan (local time, quiet hours, best
    time): its INSERT … SELECT is built once per set of release instants already past and run with the
    page's cursor and times bound. Built for each page, its CASE on 24 zones cost ≈ 3 ms of CPU to
    build and as much to compile (≈ 8 µs per recipient at 500 a page); a best-time plan's, with 24
    hour slots per zone, several times that."""

    def __init__(self, campaign_id: int, page: Select[int], plan: ReleasePlan, split: Split | None) -> None:
        self.campaign_id = campaign_id
        self.page = page  # bound: `page_after`, `page_upto` (audience.service.bound_page)
        self.plan = plan
        self.split = split
        self.built: dict[tuple[bool, ...], Any] = {}


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"

    def _one_of(self, column: ColumnElement[int], ids: Sequence[int]) -> ColumnElement[bool]:
        """`column` is one of `ids`, passed as one parameter (`_ids_in`)."""
        if self._postgres:
            return column == any_(literal(list(ids), ARRAY(BigInteger)))
        values: Select[Any] = select(literal_column("value")).select_from(
            func.json_each(_ids_value(False, ids))
        )
        return column.in_(values.scalar_subquery())

    async def fanout_cursor(self, campaign_id: int, first_id: int, last_id: int) -> int:
        """The ledger is a slice's fan-out cursor: its recipients are added in subscriber id order.

        The highest recipient already in the ledger within first_id..last_id (first_id - 1 for none),
        read from the (campaign_id, subscriber_id) unique index.
        """
        query = select(func.max(Delivery.subscriber_id)).where(
            Delivery.campaign_id == campaign_id, Delivery.subscriber_id.between(first_id, last_id)
        )
        highest = (await self.session.execute(query)).scalar_one()
        return first_id - 1 if highest is None else int(highest)

    async def add_page(
        self,
        campaign_id: int,
        page: Select[int],
        now: datetime,
        queued_until: datetime,
        split: Split | None = None,
    ) -> tuple[list[int], int | None]:
        """Add a page of the audience (a query of subscriber ids) to the ledger in one statement.

        INSERT … SELECT … RETURNING: the ids never pass through Python. Reading a page of ids and
        inserting rows of eight bound values cost ≈ 40 µs of CPU per recipient (delivery benchmark:
        3,900 -> 4,650 messages per CPU-second). Returns the new rows' ids in order, and the highest
        subscriber among them (the fan-out's next cursor); none once the audience is exhausted (or
        a concurrent fan-out added these recipients first). A campaign with a release plan (local
        time, quiet hours, best time) adds its pages through `add_released`.
        """
        if self._postgres:
            # asyncpg prepares statements, and after five runs PostgreSQL may switch to a generic
            # plan that cannot see the cursor's selectivity: measured, it tripled PostgreSQL's CPU
            # for a campaign (7.7 -> 18 CPU-s at N=100,000). Plan each page for its own cursor.
            await self.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        d = _deliveries.c
        new = _new_row(campaign_id, now, queued_until)
        subscriber_ids = page.subquery()
        values: dict[str, ColumnElement[Any]] = {
            name: literal(value, d[name].type) for name, value in new.items()
        }
        if split is not None:
            values.update(_grouped(campaign_id, subscriber_ids.c.id, split, now, queued_until))
        rows = select(subscriber_ids.c.id, *values.values()).where(
            self._sending(campaign_id)
        )  # SQLite needs a WHERE before ON CONFLICT anyway
        # Only while the campaign is sending: a page of a cancelled campaign adds nobody.
        columns = ["subscriber_id", *values]
        statement = insert_ignore_from(self.session, _deliveries, columns, rows).returning(
            d.id, d.subscriber_id
        )
        added = (await self.session.execute(statement)).all()
        highest = max((int(subscriber_id) for _, subscriber_id in added), default=None)
        return sorted(int(delivery_id) for delivery_id, _ in added), highest

    async def add_released(
        self, pages: ReleasedPages, after_id: int, upto: int, now: datetime, queued_until: datetime
    ) -> tuple[list[int], int | None]:
        """`add_page` for a campaign with a release plan, through its statement built once per set of
        release instants already past (`ReleasedPages`), the page's cursor and the times bound. Only
        the rows due now are returned."""
        if self._postgres:
            await self.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        past = pages.plan.past(now)
        statement = pages.built.get(past)
        if statement is None:
            statement = self._released_statement(pages.campaign_id, pages.page, pages.plan, pages.split, now)
            pages.built[past] = statement
        values = {
            "release_now": now,
            "release_queued": queued_until,
            "page_after": after_id,
            "page_upto": upto,
        }
        return _released_result((await self.session.execute(statement, values)).all())

    def _released_statement(
        self, campaign_id: int, page: Select[int], plan: ReleasePlan, split: Split | None, now: datetime
    ) -> Any:
        """The page's INSERT … SELECT for a campaign with a release plan: each row's due time (and, for a
        zone that quiet hours drop, its final state) is a CASE on its subscriber's zone, in the same one
        statement. Rows due later are left unqueued (no owner, lease until their release): the sweep
        queues them then. An A/B campaign's groups are decided as in `add_page`: the holdout ends at
        once, the rest waits for the winner (then it is due at once, whatever its zone). It returns each
        row with whether it is due now. `now` and the queue's grace are bound at execution
        (`release_now`, `release_queued`); `now` here only decides which instants are past."""
        d, s = _deliveries.c, _subscribers.c
        subscriber_ids = page.subquery()
        zone = s.timezone
        now_at = bindparam("release_now", type_=d.next_attempt_at.type)
        queued_at = bindparam("release_queued", type_=d.lease_until.type)

        def at(value: datetime) -> ColumnElement[Any]:
            return literal(value, d.next_attempt_at.type)

        def due_of(due: datetime) -> ColumnElement[Any]:
            return now_at if due <= now else at(due)

        def release_of(due: datetime) -> ColumnElement[Any]:
            return queued_at if due <= now else at(due)

        due_whens = [(zone.in_(zones), due_of(due)) for due, zones in plan.groups]
        lease_whens = [(zone.in_(zones), release_of(due)) for due, zones in plan.groups]
        due = case(*due_whens, else_=due_of(plan.default_at)) if due_whens else due_of(plan.default_at)
        lease = (
            case(*lease_whens, else_=release_of(plan.default_at))
            if lease_whens
            else release_of(plan.default_at)
        )
        dropped: ColumnElement[bool] = zone.in_(plan.dropped) if plan.dropped else literal(False)
        kept = [z for _, zones in plan.groups for z in zones]
        if plan.default_dropped:
            dropped = or_(dropped, zone.is_(None), zone.not_in(kept) if kept else literal(True))
        joined: Any = subscriber_ids.join(_subscribers, s.id == subscriber_ids.c.id)
        best_hour: ColumnElement[Any] = literal(None, d.best_hour.type)
        if plan.best is not None:
            # Best time: a recipient with clicks takes its hour's slot (never dropped: quiet hours hold
            # it); one without keeps the local-time plan above.
            best = self._best_hours(subscriber_ids, plan.best)
            joined = joined.outerjoin(best, best.c.subscriber_id == subscriber_ids.c.id)
            best_hour = best.c.hour
            slot_due = self._hour_slot(zone, best_hour, plan.best, due_of)
            slot_lease = self._hour_slot(zone, best_hour, plan.best, release_of)
            due = case((best_hour.is_(None), due), else_=slot_due)
            lease = case((best_hour.is_(None), lease), else_=slot_lease)
            dropped = best_hour.is_(None) & dropped
        group: ColumnElement[Any] = literal(None, d.variant.type)
        in_holdout: ColumnElement[bool] = literal(False)
        if split is not None:
            group, in_holdout, waits = _split_of(campaign_id, subscriber_ids.c.id, split)
            due = case((waits, at(_WAITING)), else_=due)
            lease = case((waits, at(_WAITING)), else_=lease)
        status = case(
            (in_holdout, literal(DeliveryStatus.EXPIRED.value)),
            (dropped, literal(DeliveryStatus.EXPIRED.value)),
            else_=literal(DeliveryStatus.PENDING.value),
        )
        reason = case(
            (in_holdout, literal(HOLDOUT_REASON)),
            (dropped, literal(QUIET_HOURS_REASON)),
            else_=literal(None, d.last_error.type),
        )
        rows = (
            select(
                subscriber_ids.c.id,
                literal(campaign_id, d.campaign_id.type),
                status,
                literal(0, d.attempts.type),
                lease,
                due.label("due"),
                now_at.label("updated_at"),
                reason,
                group,
                best_hour,
            )
            .select_from(joined)
            .where(self._sending(campaign_id))
            # Each release's rows side by side in the ledger (new ids in this order): a zone's rows
            # are then claimed, sent and recorded a few table pages at a time, not one row in each of
            # hundreds of pages (24 zones interleaved in id order doubled the cost of every ledger
            # write of a local-time campaign on SQLite: pages read and written back per statement).
            .order_by(literal_column("due"), subscriber_ids.c.id)
        )
        columns = [
            "subscriber_id",
            "campaign_id",
            "status",
            "attempts",
            "lease_until",
            "next_attempt_at",
            "updated_at",
            "last_error",
            "variant",
            "best_hour",
        ]
        ready = (d.status == DeliveryStatus.PENDING) & (d.next_attempt_at <= now_at)
        return insert_ignore_from(self.session, _deliveries, columns, rows).returning(
            d.id, d.subscriber_id, ready
        )

    def _best_hours(self, subscriber_ids: Any, best: BestTime) -> Any:
        """(subscriber_id, hour) for the page's subscribers with clicks in the window: the local hour
        (its zone's offset at the click's time) most of them fell in, the earliest hour on a tie.

        Nested selects rather than one GROUP BY on the hour's expression: PostgreSQL does not see the
        select's and the GROUP BY's bound offsets as one expression."""
        e, s = _events.c, _subscribers.c
        offset = _offset_case(s.timezone, e.created_at, best)
        seconds = cast(epoch_bucket(self.session, e.created_at, 1), BigInteger) + offset
        clicks = (
            select(e.subscriber_id.label("subscriber_id"), ((seconds // 3600) % 24).label("hour"))
            .join_from(_events, _subscribers, s.id == e.subscriber_id)
            .where(
                e.subscriber_id.in_(select(subscriber_ids.c.id)),
                e.type == "clicked",
                e.created_at >= best.since,
                e.created_at < best.until,
            )
            .subquery()
        )
        counted = (
            select(clicks.c.subscriber_id, clicks.c.hour, func.count().label("n"))
            .group_by(clicks.c.subscriber_id, clicks.c.hour)
            .subquery()
        )
        order = func.row_number().over(
            partition_by=counted.c.subscriber_id, order_by=(counted.c.n.desc(), counted.c.hour)
        )
        ranked = select(counted.c.subscriber_id, counted.c.hour, order.label("rank")).subquery()
        return select(ranked.c.subscriber_id, ranked.c.hour).where(ranked.c.rank == 1).subquery()

    @staticmethod
    def _hour_slot(
        zone: ColumnElement[Any],
        hour: ColumnElement[Any],
        best: BestTime,
        render: Callable[[datetime], ColumnElement[Any]],
    ) -> ColumnElement[Any]:
        """The hour's slot in the recipient's zone: a CASE on the zone's group, then on the hour (24
        branches per group of zones sharing their slots); `render` writes a slot (as its due or lease)."""

        def by_hour(slots: tuple[datetime, ...]) -> ColumnElement[Any]:
            return case({index: render(slot) for index, slot in enumerate(slots)}, value=hour)

        default = by_hour(best.default_slots)
        if not best.slots:
            return default
        return case(*((zone.in_(zones), by_hour(slots)) for zones, slots in best.slots), else_=default)

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

    async def release_rest(self, campaign_id: int, winner: int, now: datetime) -> int:
        """An A/B campaign's rest made due with the winner's content (REST_GROUP + winner); the sweep
        queues the rows, whose lease lapses now. How many rows."""
        d = _deliveries.c
        result = await self.session.execute(
            update(_deliveries)
            .where(
                d.campaign_id == campaign_id,
                d.variant == REST_GROUP,
                d.status == DeliveryStatus.PENDING,
            )
            .values(variant=REST_GROUP + winner, next_attempt_at=now, lease_until=now, updated_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def claim(
        self,
        delivery_ids: Sequence[int],
        owner: str,
        now: datetime,
        lease_until: datetime,
        campaign_id: int | None = None,
    ) -> list[Claimed]:
        """Take the still-pending, due, unheld rows of a job; a duplicate job finds nothing to take.
        Nothing of a paused `campaign_id` is taken (delivery.pause).

        Only the rows this statement took are returned, not every row of the job `owner` holds: a job
        run twice in one process (a queue entry reclaimed from a live consumer, rows swept while their
        job still ran) must not send again what the first run is sending.
        """
        ids = _ids_value(self._postgres, delivery_ids)
        claim: dict[str, Any] = {"ids": ids, "now": now, "new_owner": owner, "until": lease_until}
        claim["campaign"] = -1 if campaign_id is None else campaign_id  # -1: no campaign, none paused
        taken = await self.session.execute(_claim_statement(self._postgres), claim)
        taken_ids = sorted(taken.scalars())
        if not taken_ids:
            return []
        rows = await self.session.execute(
            _claimed_rows(self._postgres), {"ids": _ids_value(self._postgres, taken_ids)}
        )
        # Claimed(*row), not _make: the fields after the selected ones keep their defaults.
        return [Claimed(*row) for row in rows.all()]

    async def profiles(self, subscriber_ids: Sequence[int], *, templates: bool) -> dict[int, Profile]:
        """The recipients' languages, and for templates their aliases, tags and attributes: one
        statement each, over a job's recipients."""
        s = _subscribers.c
        rows = (
            await self.session.execute(
                select(s.id, s.alias, s.language).where(self._one_of(s.id, subscriber_ids))
            )
        ).all()
        if not templates:
            return {int(sid): Profile(alias=alias, language=language) for sid, alias, language in rows}
        subscribers = SubscriberRepository(self.session)
        tags = await subscribers.tag_names_of(subscriber_ids)
        attributes = await subscribers.attributes_of(subscriber_ids)
        return {
            int(sid): Profile(alias, language, tuple(tags.get(int(sid), ())), attributes.get(int(sid), {}))
            for sid, alias, language in rows
        }

    async def finish(
        self, delivery_ids: Sequence[int], status: DeliveryStatus, now: datetime, reason: str | None = None
    ) -> None:
        if not delivery_ids:
            return
        ids = _ids_value(self._postgres, delivery_ids)
        values: dict[str, Any] = {"ids": ids, "new_status": status, "why": reason, "at": now}
        await self.session.execute(_finish_statement(self._postgres), values)

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

    def _paused(self, campaign_id: int) -> ColumnElement[bool]:
        query = select(Campaign.id).where(
            Campaign.id == campaign_id, Campaign.status == CampaignStatus.PAUSED
        )
        return query.exists()

    async def defer(self, later: Sequence[tuple[int, datetime]], now: datetime) -> None:
        """Claimed rows handed back unattempted until their send time (delivery.pace): the sweep queues
        each when it comes, and PACED_REASON tells the next claim that its time was given already."""
        if not later:
            return
        d = _deliveries.c
        statement = (
            update(_deliveries)
            .where(d.id == bindparam("row_id"))
            .values(
                owner=None,
                lease_until=bindparam("at"),
                next_attempt_at=bindparam("at"),
                attempts=d.attempts - 1,
                last_error=PACED_REASON,
                updated_at=now,
            )
        )
        await self.session.execute(statement, [{"row_id": row_id, "at": at} for row_id, at in later])

    async def serialize_cap(self, app_id: int) -> None:
        """Hold the app's frequency-cap lock until this transaction ends, so that two jobs' checks
        (`over_cap`) of one app run one after the other and the second sees the first's claimed rows.

        SQLite needs none: the claim before the check took the database's write lock, held to the
        commit. PostgreSQL (READ COMMITTED) let two campaigns' jobs claim one subscriber at once,
        each check miss the other's uncommitted claim, and both send past the cap: a transaction-level
        advisory lock per app (the key's first half names the cap's locks) orders them."""
        if self._postgres:
            key = {"space": CAP_LOCK_SPACE, "app": app_id}
            await self.session.execute(text("SELECT pg_advisory_xact_lock(:space, :app)"), key)

    async def over_cap(
        self, campaign_id: int, subscriber_ids: Sequence[int], cap: int, since: datetime
    ) -> set[int]:
        """Those of the subscribers that `cap` non-transactional notifications reached since `since`
        (sent, or being sent now by another campaign: counting those keeps two campaigns racing for
        one subscriber from both passing), other than this campaign's."""
        d = _deliveries.c
        counted = or_(
            d.status == DeliveryStatus.SENT, (d.status == DeliveryStatus.PENDING) & d.owner.is_not(None)
        )
        query = (
            select(d.subscriber_id)
            .join_from(_deliveries, Campaign.__table__, Campaign.id == d.campaign_id)
            .where(
                self._one_of(d.subscriber_id, subscriber_ids),
                d.campaign_id != campaign_id,
                d.updated_at >= since,
                counted,
                Campaign.is_transactional.is_(False),
                Campaign.push_campaign_id.is_(None),
            )
            .group_by(d.subscriber_id)
            .having(func.count() >= cap)
        )
        return {int(sid) for sid in (await self.session.execute(query)).scalars()}

    async def cap(self, delivery_ids: Sequence[int], now: datetime, reason: str) -> None:
        """Claimed rows end `capped` unattempted (the claim's count taken back): the frequency cap."""
        d = _deliveries.c
        await self.session.execute(
            update(_deliveries)
            .where(self._one_of(d.id, delivery_ids))
            .values(
                status=DeliveryStatus.CAPPED,
                owner=None,
                attempts=d.attempts - 1,
                last_error=reason,
                updated_at=now,
            )
        )

    async def resume(self, campaign_id: int, now: datetime) -> None:
        """A resumed campaign's waiting rows are due now and take new send times (no burst of the
        times given before the pause); the sweep queues them within a second."""
        d = _deliveries.c
        waiting = [d.campaign_id == campaign_id, d.status == DeliveryStatus.PENDING, d.owner.is_(None)]
        await self.session.execute(
            update(_deliveries)
            .where(*waiting)
            .values(
                lease_until=now,
                next_attempt_at=now,
                last_error=case((d.last_error == PACED_REASON, None), else_=d.last_error),
            )
        )

    def _sending(self, campaign_id: int) -> ColumnElement[bool]:
        query = select(Campaign.id).where(
            Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING
        )
        return query.exists()

    async def cancel_pending(self, campaign_id: int, now: datetime) -> int:
        """End the cancelled campaign's pending rows (CANCELLED_REASON): their queued jobs find nothing
        to claim. A row in flight is ended too; its outcome, recorded after, overwrites this, so what
        was sent stays counted. Returns how many rows were ended."""
        result = await self.session.execute(
            update(_deliveries)
            .where(_deliveries.c.campaign_id == campaign_id, _deliveries.c.status == DeliveryStatus.PENDING)
            .values(status=DeliveryStatus.EXPIRED, last_error=CANCELLED_REASON, owner=None, updated_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def renew(self, delivery_ids: Sequence[int], owner: str, lease_until: datetime) -> None:
        """Extend the lease of the rows `owner` still holds (pending, not yet recorded) among these."""
        values = {"ids": _ids_value(self._postgres, delivery_ids), "holder": owner, "until": lease_until}
        await self.session.execute(_renew_statement(self._postgres), values)

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

    async def note_reach(self, reached: Sequence[int], unreached: Sequence[int]) -> None:
        """Subscribers' campaigns in a row not reached (the hygiene job's count), through their own
        repository."""
        await SubscriberRepository(self.session).note_reach(reached, unreached)

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

    async def lapsed(
        self, now: datetime, queued_until: datetime, limit: int, held: Sequence[int] = ()
    ) -> list[tuple[int, int]]:
        """Pending rows whose lease ran out (lost job, dead worker, retry due): queue them again.

        `held`: rows a live job of the sweeping process still holds, left alone even if their lease
        lapsed (its renewal was late, the database away): queued again, they would be sent twice.
        """
        lapsed = [Delivery.status == DeliveryStatus.PENDING, Delivery.lease_until < now]
        # A paused campaign's rows wait for its resume (which makes them due again).
        paused = select(Campaign.id).where(Campaign.status == CampaignStatus.PAUSED)
        lapsed.append(Delivery.campaign_id.not_in(paused.scalar_subquery()))
        if held:
            lapsed.append(~self._one_of(_deliveries.c.id, held))
        candidates = (
            select(Delivery.id).where(*lapsed).order_by(Delivery.campaign_id, Delivery.id).limit(limit)
        )
        # One UPDATE … RETURNING: the rows it takes are the ones it returns (a zone's release queues
        # thousands; a SELECT and then an UPDATE of its ids read each row twice). The conditions again
        # outside: on PostgreSQL a row a concurrent sweep took meanwhile is re-checked and skipped.
        statement = (
            update(Delivery)
            .where(
                Delivery.id.in_(candidates.scalar_subquery()),
                _by_id(_deliveries.c.status, self._postgres) == DeliveryStatus.PENDING,
                _by_id(_deliveries.c.lease_until, self._postgres) < now,
            )
            .values(owner=None, lease_until=queued_until)
            .returning(Delivery.id, Delivery.campaign_id)
            .execution_options(synchronize_session=False)
        )
        taken = (await self.session.execute(statement)).all()
        return sorted(((int(d), int(c)) for d, c in taken), key=lambda row: (row[1], row[0]))

    async def reset_leases(self, now: datetime) -> None:
        """One process owns an in-memory queue: after its restart, nothing it held is held any more.

        Safe because with `memory://` the engine runs only inside the one `clarion serve` (a worker
        needs a shared queue to receive jobs: docs/operations.md, Scaling out): when it starts, the
        process that held these leases is dead, nobody is sending them, and waiting for the leases
        to lapse would only stall delivery (the chaos suite's kill-serve). The ledger's rows here;
        the campaigns' fan-out leases through CampaignRepository, in this transaction.
        """
        await self.session.execute(
            update(Delivery)
            # A row waiting for its retry keeps its time (its lease_until is its next_attempt_at): set
            # to now, the sweep would queue it at once, the claim skip it as not yet due, and the
            # queue's grace (10 x CLARION_LEASE_S) pass before the next sweep looked at it again.
            .where(Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt_at <= now)
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

    async def fold(
        self, campaign_id: int, before: datetime, now: datetime, limit: int | None = None
    ) -> Counter[DeliveryStatus]:
        """Delete (up to `limit` of) the campaign's final rows last changed before `before`, counting
        them into the campaign (through its repository, in this transaction): ledger retention.

        The counts come from the DELETE's own RETURNING, so a row that a concurrent fold deleted first
        is neither deleted nor counted twice: folding is idempotent however many workers run it.
        """
        d = _deliveries.c
        chosen = select(d.id).where(
            d.campaign_id == campaign_id, d.status != DeliveryStatus.PENDING, d.updated_at < before
        )
        if limit is not None:
            chosen = chosen.order_by(d.id).limit(limit)
        statement = delete(_deliveries).where(d.id.in_(chosen.scalar_subquery())).returning(d.status)
        counts = Counter(DeliveryStatus(s) for s in (await self.session.execute(statement)).scalars())
        if counts:
            await CampaignRepository(self.session).add_folded(campaign_id, counts, now)
        return counts

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


@dataclass(frozen=True, slots=True)
class SliceRange:
    first_id: int
    last_id: int


class SliceRepository:
    """The fan-out's slices: leased like ledger rows, held only while their campaign is sending."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _sending(self, campaign_id: int | ColumnElement[int]) -> ColumnElement[bool]:
        """The campaign is sending (not cancelled): only then are its slices fanned out."""
        query = select(Campaign.id).where(
            Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING
        )
        return query.exists()

    async def add(self, campaign_id: int, ranges: Sequence[SliceRange], queued_until: datetime) -> list[int]:
        """The campaign's slices, queued (no owner, left to their jobs until queued_until); their ids."""
        rows = [
            {
                "campaign_id": campaign_id,
                "first_id": r.first_id,
                "last_id": r.last_id,
                "done": False,
                "lease_until": queued_until,
            }
            for r in ranges
        ]
        if not rows:
            return []
        result = await self.session.execute(insert(_slices).returning(_slices.c.id), rows)
        return sorted(result.scalars())

    async def undone(self, campaign_id: int) -> list[int] | None:
        """The ids of the campaign's slices still to fan out; None when it was never cut into slices."""
        c = _slices.c
        query = select(c.id, c.done).where(c.campaign_id == campaign_id).order_by(c.id)
        rows = (await self.session.execute(query)).all()
        if not rows:
            return None
        return [int(slice_id) for slice_id, done in rows if not done]

    async def claim(
        self, slice_id: int, campaign_id: int, owner: str, now: datetime, lease_until: datetime
    ) -> SliceRange | None:
        """Take the slice if it is to do, not held by another process, and its campaign sending; a
        duplicate job in another process finds none.

        A slice this owner still holds is taken again: the caller runs at most one step of a slice at
        a time in its process (DeliveryTasks.fan_out), so the holder is a step of this process that
        ended without handing it back (the database went away mid-step); waiting for its own lease to
        lapse would stall the slice that long, and then queue its next step behind everything else.
        """
        c = _slices.c
        result = await self.session.execute(
            update(_slices)
            .where(
                c.id == slice_id,
                c.done.is_(False),
                or_(c.owner.is_(None), c.owner == owner, c.lease_until < now),
                self._sending(campaign_id),
            )
            .values(owner=owner, lease_until=lease_until)
            .returning(c.first_id, c.last_id)
        )
        row = result.first()
        return None if row is None else SliceRange(int(row[0]), int(row[1]))

    async def renew(self, slice_id: int, campaign_id: int, owner: str, lease_until: datetime) -> bool:
        """Keep holding the slice; False once it is lost (taken over) or its campaign stopped sending."""
        c = _slices.c
        result = await self.session.execute(
            update(_slices)
            .where(c.id == slice_id, c.owner == owner, self._sending(campaign_id))
            .values(lease_until=lease_until)
        )
        return getattr(result, "rowcount", 0) == 1

    async def release(self, slice_id: int, owner: str, queued_until: datetime) -> None:
        """Hand the slice back to the queue (its next step is queued): no owner, left alone until then."""
        c = _slices.c
        await self.session.execute(
            update(_slices)
            .where(c.id == slice_id, c.owner == owner)
            .values(owner=None, lease_until=queued_until)
        )

    async def finish(self, slice_id: int, campaign_id: int, owner: str) -> bool:
        """Mark the slice fanned out; True when none of its campaign's slices is left to do."""
        c = _slices.c
        await self.session.execute(
            update(_slices).where(c.id == slice_id, c.owner == owner).values(done=True, owner=None)
        )
        left = select(c.id).where(c.campaign_id == campaign_id, c.done.is_(False)).limit(1)
        return (await self.session.execute(left)).first() is None

    async def lapsed(self, now: datetime, queued_until: datetime, limit: int) -> list[tuple[int, int]]:
        """Slices to do whose lease ran out (a lost job, a dead worker) and whose campaign is sending:
        (slice id, campaign id), each left to the job queued for it until `queued_until`."""
        c = _slices.c
        query = (
            select(c.id, c.campaign_id)
            .where(c.done.is_(False), c.lease_until < now, self._sending(c.campaign_id))
            .order_by(c.id)
            .limit(limit)
        )
        rows = [(int(s), int(k)) for s, k in (await self.session.execute(query)).all()]
        if rows:
            await self.session.execute(
                update(_slices)
                .where(c.id.in_([slice_id for slice_id, _ in rows]), c.done.is_(False), c.lease_until < now)
                .values(owner=None, lease_until=queued_until)
            )
        return rows

    async def resume(self, campaign_id: int, now: datetime) -> None:
        """A resumed campaign's slices waiting for a step are due now (the sweep queues them)."""
        c = _slices.c
        await self.session.execute(
            update(_slices)
            .where(c.campaign_id == campaign_id, c.done.is_(False), c.owner.is_(None))
            .values(lease_until=now)
        )

    async def reset_leases(self, now: datetime) -> None:
        """An in-process queue died with its process: every slice to do is due at once."""
        c = _slices.c
        await self.session.execute(
            update(_slices).where(c.done.is_(False)).values(owner=None, lease_until=now)
        )

    async def release_queued(self, now: datetime) -> None:
        """The queue lost its jobs: slices waiting in it (no owner) are due at once; held ones keep theirs."""
        c = _slices.c
        await self.session.execute(
            update(_slices)
            .where(c.done.is_(False), c.owner.is_(None), c.lease_until > now)
            .values(lease_until=now)
        )

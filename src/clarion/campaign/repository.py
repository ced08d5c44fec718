"""All SQL about campaigns, their targets and their statistics: the one writer of `campaigns`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.db import epoch_bucket, insert_ignore
from clarion.models import (
    FINISHED_CAMPAIGN_STATUSES,
    FOLDED_COUNTERS,
    App,
    Batch,
    Campaign,
    CampaignStatus,
    CampaignTarget,
    Delivery,
    DeliveryStatus,
    Event,
    FanoutSlice,
    Segment,
    Subscriber,
    Tag,
)
from clarion.validation import storable


class CampaignRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, campaign: Campaign, targets: Sequence[str]) -> Campaign:
        self.session.add(campaign)
        await self.session.flush()
        rows = [{"campaign_id": campaign.id, "value": value} for value in dict.fromkeys(targets)]
        await insert_ignore(self.session, CampaignTarget.__table__, rows)
        return campaign

    async def add_for_batch(
        self,
        app_id: int,
        push_campaign_id: int,
        batch_id: str,
        payload: dict[str, Any],
        *,
        ttl_s: int,
        now: datetime,
    ) -> Campaign:
        """The campaign of a Swrve-style batch: transactional, started at once, its ledger rows
        written by the batch's processing rather than by a fan-out."""
        campaign = Campaign(
            app_id=app_id,
            status=CampaignStatus.SENDING,
            send_at=now,
            ttl_s=ttl_s,
            display_time_s=0,
            push_tag=None,
            is_transactional=True,
            urgency="normal",
            payload=payload,
            audience={"kind": "batch", "batch_id": batch_id},
            created_at=now,
            fanout_done=False,
            started_at=now,
            push_campaign_id=push_campaign_id,
        )
        self.session.add(campaign)
        await self.session.flush()
        return campaign

    async def finish_batch_fanout(self, campaign_id: int, *, ttl_s: int) -> None:
        """A batch's rows are all in the ledger: its longest TTL is the campaign's."""
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(ttl_s=ttl_s, fanout_done=True)
            .execution_options(synchronize_session=False)
        )

    async def cancel(self, app_id: int, campaign_id: int, now: datetime) -> bool:
        """Mark the app's campaign cancelled if it has not finished; whether it was.

        Conditional, so it races safely with the scheduler's claim and a worker's completion: a
        campaign cancelled while scheduled is never claimed, one cancelled while sending has its
        slices no longer claimed, and one that finished first stays as it ended."""
        result = await self.session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.app_id == app_id,
                Campaign.status.in_(
                    (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)
                ),
            )
            .values(status=CampaignStatus.CANCELLED, finished_at=now)
        )  # the session's copy of the campaign shows the change
        return getattr(result, "rowcount", 0) == 1

    async def change_status(self, app_id: int, campaign_id: int, before: str, after: str) -> bool:
        """Move the app's campaign from `before` to `after` if it is still `before` (pause, resume:
        conditional, so they race safely with a worker's completion and a cancel); whether it moved."""
        result = await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.app_id == app_id, Campaign.status == before)
            .values(status=after)
        )  # the session's copy of the campaign shows the change
        return getattr(result, "rowcount", 0) == 1

    async def status_of(self, campaign_id: int) -> str | None:
        query = select(Campaign.status).where(Campaign.id == campaign_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def follow_ups(self, campaign_id: int) -> list[Campaign]:
        """The updates and retractions of a campaign, oldest first."""
        query = select(Campaign).where(Campaign.follows_id == campaign_id).order_by(Campaign.id)
        return list((await self.session.execute(query)).scalars())

    async def waiting_for_winner(self) -> list[Campaign]:
        """Sending A/B campaigns whose rest still waits for the winner."""
        query = select(Campaign).where(
            Campaign.status == CampaignStatus.SENDING,
            Campaign.winner_after_s.is_not(None),
            Campaign.winner_variant.is_(None),
        )
        return list((await self.session.execute(query)).scalars())

    async def set_winner(self, campaign_id: int, winner: int) -> bool:
        """Record the winner once: False when another scheduler recorded one first."""
        result = await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.winner_variant.is_(None))
            .values(winner_variant=winner)
        )
        return getattr(result, "rowcount", 0) == 1

    async def recent(self, app_id: int, limit: int) -> list[Campaign]:
        """The app's newest campaigns first."""
        query = (
            select(Campaign)
            .where(Campaign.app_id == app_id)
            .order_by(Campaign.created_at.desc(), Campaign.id.desc())
            .limit(limit)
        )
        return list((await self.session.execute(query)).scalars())

    async def get(self, app_id: int, campaign_id: int) -> Campaign | None:
        campaign = await self.session.get(Campaign, campaign_id)
        return campaign if campaign is not None and campaign.app_id == app_id else None

    async def mark_started(self, campaign_id: int, now: datetime) -> Campaign | None:
        """The campaign, its first fan-out's start recorded (a resumed fan-out keeps the first)."""
        campaign = await self.session.get(Campaign, campaign_id)
        if campaign is not None and campaign.started_at is None:
            campaign.started_at = now
        return campaign

    async def set_release_plan(self, campaign_id: int, plan: dict[str, Any]) -> None:
        """Fix the campaign's per-zone release instants (once: a resumed plan keeps the first)."""
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.release_plan.is_(None))
            .values(release_plan=plan)
        )

    async def find(self, campaign_id: int) -> Campaign | None:
        """A campaign, whichever app it is: for the delivery workers."""
        return await self.session.get(Campaign, campaign_id)

    async def get_with_app(self, campaign_id: int) -> tuple[Campaign, App] | None:
        """A campaign and its app, whichever app it is: for the delivery workers."""
        campaign = await self.session.get(Campaign, campaign_id)
        if campaign is None:
            return None
        app = await self.session.get(App, campaign.app_id)
        assert app is not None, "a campaign's app is deleted with it"
        return campaign, app

    async def batch_deadline(self, campaign: Campaign) -> datetime | None:
        """The execution time limit of the Swrve batch this campaign sends, if it sends one."""
        batch_id = campaign.audience.get("batch_id") if campaign.audience.get("kind") == "batch" else None
        if batch_id is None:
            return None
        query = select(Batch.deadline_at).where(Batch.id == str(batch_id))
        return (await self.session.execute(query)).scalar_one_or_none()

    async def quota_campaigns_since(self, app_id: int, since: datetime) -> int:
        """Campaigns of the app created since `since` that count toward its plan's quota."""
        query = select(func.count()).where(
            Campaign.app_id == app_id, Campaign.created_at >= since, Campaign.counts_toward_quota.is_(True)
        )
        return int((await self.session.execute(query)).scalar_one())

    async def created_for_since(self, app_id: int, target: str, push_tag: str, since: datetime) -> int:
        """Campaigns with this push_tag created since `since` whose target list names `target`."""
        query = (
            select(func.count())
            .select_from(Campaign)
            .join(CampaignTarget, CampaignTarget.campaign_id == Campaign.id)
            .where(
                Campaign.app_id == app_id,
                Campaign.push_tag == push_tag,
                Campaign.created_at >= since,
                CampaignTarget.value == target,
            )
        )
        return int((await self.session.execute(query)).scalar_one())

    async def segment_named(self, app_id: int, name: str) -> Segment | None:
        if not storable(name):
            return None
        query = select(Segment).where(Segment.app_id == app_id, Segment.name == name)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def tags_by_names(self, app_id: int, names: Sequence[str]) -> list[Tag]:
        """The app's tags of these names (case-folded), which a tags_segment audience refers to by id."""
        folded = [name.casefold() for name in names if storable(name)]
        query = select(Tag).where(Tag.app_id == app_id, Tag.name_folded.in_(folded))
        return list((await self.session.execute(query)).scalars())

    async def add_segment(self, segment: Segment) -> Segment:
        self.session.add(segment)
        await self.session.flush()
        return segment

    async def segment_by_id(self, app_id: int, segment_id: int) -> Segment | None:
        query = select(Segment).where(Segment.app_id == app_id, Segment.id == segment_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def segments_page(self, app_id: int, after_id: int, limit: int) -> list[Segment]:
        query = select(Segment).where(Segment.app_id == app_id, Segment.id > after_id).order_by(Segment.id)
        return list((await self.session.execute(query.limit(limit))).scalars())

    async def delete_segment(self, segment: Segment) -> None:
        """The saved audience only: campaigns sent to it keep their own copy of its terms."""
        await self.session.execute(delete(Segment).where(Segment.id == segment.id))

    async def sent_count(self, campaign_id: int) -> int:
        """Recipients sent to: those folded away by retention plus the ledger rows that remain.

        One statement, so one snapshot: a fold committing meanwhile is counted wholly or not at all.
        """
        remaining = select(func.count()).where(
            Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.SENT
        )
        query = select(Campaign.folded_sent + remaining.scalar_subquery()).where(Campaign.id == campaign_id)
        return int((await self.session.execute(query)).scalar_one_or_none() or 0)

    async def capped_count(self, campaign_id: int) -> int:
        """Recipients the frequency cap kept it from (folded ones included), in one statement too."""
        remaining = select(func.count()).where(
            Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.CAPPED
        )
        query = select(Campaign.folded_capped + remaining.scalar_subquery()).where(Campaign.id == campaign_id)
        return int((await self.session.execute(query)).scalar_one_or_none() or 0)

    async def claim_foldable(self, horizon: datetime) -> int | None:
        """A campaign whose ledger rows retention may fold now, held by this transaction alone.

        Finished before `horizon`, with final rows last changed before it; a Swrve batch's campaign
        is left to the Swrve feature, which keeps its per-user report first. On PostgreSQL the row lock (SKIP
        LOCKED) spreads concurrent workers over different campaigns; SQLite has one writer anyway.
        """
        # The rows LedgerRepository.fold takes: a campaign is claimed only if it will fold some.
        rows = select(Delivery.id).where(
            Delivery.campaign_id == Campaign.id,
            Delivery.status != DeliveryStatus.PENDING,
            Delivery.updated_at < horizon,
        )
        query = (
            select(Campaign.id)
            .where(
                Campaign.status.in_(FINISHED_CAMPAIGN_STATUSES),
                func.coalesce(Campaign.finished_at, Campaign.created_at) < horizon,
                Campaign.push_campaign_id.is_(None),
                rows.exists(),
            )
            .order_by(Campaign.id)
            .limit(1)
            .with_for_update(skip_locked=True, of=Campaign)
        )
        found = (await self.session.execute(query)).scalar_one_or_none()
        return None if found is None else int(found)

    async def add_folded(self, campaign_id: int, counts: Mapping[DeliveryStatus, int], now: datetime) -> None:
        """Count rows folded away (deleted by the caller in this transaction) into the campaign."""
        values: dict[str, Any] = {
            FOLDED_COUNTERS[status]: getattr(Campaign, FOLDED_COUNTERS[status]) + n
            for status, n in counts.items()
            if n
        }
        values["ledger_folded_at"] = func.coalesce(Campaign.ledger_folded_at, now)
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(values)
            .execution_options(synchronize_session=False)
        )

    async def past_retention(self, app_id: int, campaign_id: int) -> bool:
        """Whether retention has folded (some of) this campaign of the app's ledger rows away."""
        query = select(Campaign.ledger_folded_at).where(Campaign.id == campaign_id, Campaign.app_id == app_id)
        return (await self.session.execute(query)).scalar_one_or_none() is not None

    async def event_counts(self, campaign_id: int) -> dict[str, int]:
        query = select(Event.type, func.count()).where(Event.campaign_id == campaign_id).group_by(Event.type)
        return {kind: int(n) for kind, n in (await self.session.execute(query)).all()}

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[int]:
        """Take due scheduled campaigns, and abandoned fan-outs, for this scheduler alone.

        The conditional UPDATE is the lock: however many schedulers race, one row update wins.
        """
        due = select(Campaign.id).where(
            or_(
                (Campaign.status == CampaignStatus.SCHEDULED) & (Campaign.send_at <= now),
                (Campaign.status == CampaignStatus.SENDING)
                & Campaign.fanout_done.is_(False)
                & (Campaign.fanout_lease_until < now),
            )
        )
        candidates = list((await self.session.execute(due.limit(limit))).scalars())
        claimed: list[int] = []
        for campaign_id in candidates:
            result = await self.session.execute(
                update(Campaign)
                .where(
                    Campaign.id == campaign_id,
                    or_(
                        Campaign.status == CampaignStatus.SCHEDULED,
                        (Campaign.status == CampaignStatus.SENDING) & (Campaign.fanout_lease_until < now),
                    ),
                )
                .values(status=CampaignStatus.SENDING, fanout_lease_until=lease_until)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                claimed.append(campaign_id)
        return claimed

    async def renew_fanout(self, campaign_id: int, lease_until: datetime) -> None:
        """The fan-out is still running: keep other schedulers off it until `lease_until`."""
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(fanout_lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )

    async def set_pictures(
        self, campaign_id: int, payload: dict[str, Any], warnings: list[dict[str, str]]
    ) -> bool:
        """Its pictures prepared: the payload carrying their URLs and what went wrong, written once
        (a second preparation, after a lease lapsed, finds them written and changes nothing)."""
        result = await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.picture_warnings.is_(None))
            .values(payload=payload, picture_warnings=warnings)
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    async def hand_to_slices(self, campaign_id: int) -> None:
        """The campaign is cut into slices, each with its own lease: no scheduler claims it again."""
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(fanout_lease_until=None)
            .execution_options(synchronize_session=False)
        )

    async def finish_sliced_fanouts(self) -> None:
        """Mark fanned out every sending campaign whose slices are all done.

        The worker that finishes a campaign's last slice does it; but two finishing their slices at
        once in two transactions can each still see the other's slice to do. The sweep catches that.
        """
        slices = select(FanoutSlice.id).where(FanoutSlice.campaign_id == Campaign.id)
        undone = slices.where(FanoutSlice.done.is_(False))
        await self.session.execute(
            update(Campaign)
            .where(
                Campaign.status == CampaignStatus.SENDING,
                Campaign.fanout_done.is_(False),
                slices.exists(),
                ~undone.exists(),
            )
            .values(fanout_done=True)
            .execution_options(synchronize_session=False)
        )

    async def finish_fanout(self, campaign_id: int) -> None:
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(fanout_done=True)
            .execution_options(synchronize_session=False)
        )

    async def reset_fanout_leases(self, now: datetime) -> None:
        """After an in-process engine's restart no fan-out is held: due for resumption at once."""
        await self.session.execute(
            update(Campaign)
            .where(
                Campaign.status == CampaignStatus.SENDING,
                Campaign.fanout_done.is_(False),
                # Not those handed to slices (they have their own leases) nor a Swrve batch's.
                Campaign.fanout_lease_until.is_not(None),
            )
            .values(fanout_lease_until=now)
            .execution_options(synchronize_session=False)
        )

    async def complete_if_fanned_out(self, campaign_id: int, now: datetime) -> bool:
        """Mark the campaign sent if its fan-out is done; the caller found nothing of it pending.

        Conditional: of two jobs finishing at once, only one update matches (True for that one).
        """
        result = await self.session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.status == CampaignStatus.SENDING,
                Campaign.fanout_done.is_(True),
            )
            .values(status=CampaignStatus.SENT, finished_at=now)
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    async def complete_finished(self, now: datetime) -> list[int]:
        """Mark sent every fanned-out campaign with nothing pending; returns their ids.

        Workers check this after each job, but two jobs finishing at once in two transactions can
        each still see the other's rows pending; the sweeper's pass catches that.
        """
        pending = select(Delivery.id).where(
            Delivery.campaign_id == Campaign.id, Delivery.status == DeliveryStatus.PENDING
        )
        result = await self.session.execute(
            update(Campaign)
            .where(
                Campaign.status == CampaignStatus.SENDING, Campaign.fanout_done.is_(True), ~pending.exists()
            )
            .values(status=CampaignStatus.SENT, finished_at=now)
            .returning(Campaign.id)
            .execution_options(synchronize_session=False)
        )
        return [int(campaign_id) for campaign_id in result.scalars()]

    async def count_by_status(self) -> dict[str, int]:
        """Every campaign counted by status (for /metrics; one pass over ix_campaign_due)."""
        query = select(Campaign.status, func.count()).group_by(Campaign.status)
        return {str(status): int(n) for status, n in (await self.session.execute(query)).all()}


class CampaignReportRepository:
    """Reads behind /v1's campaign views: the history, the funnel, the outcomes and the time series."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(
        self,
        app_id: int,
        before_id: int | None,
        limit: int,
        *,
        transactional: bool,
        push_tag: str | None = None,
    ) -> list[Campaign]:
        """The app's campaigns newest first (ids are time-ordered), below `before_id`; with `push_tag`,
        those sent with it only."""
        query = select(Campaign).where(Campaign.app_id == app_id).order_by(Campaign.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(Campaign.id < before_id)
        if push_tag is not None:
            query = query.where(Campaign.push_tag == push_tag)
        if not transactional:
            query = query.where(Campaign.is_transactional.is_(False))
        return list((await self.session.execute(query)).scalars())

    async def variant_ledger(self, campaign_id: int) -> list[tuple[int | None, str, int]]:
        """(A/B group, status, count) of the campaign's ledger rows (campaign/variants.py)."""
        query = (
            select(Delivery.variant, Delivery.status, func.count())
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.variant, Delivery.status)
        )
        return [(v, str(s), int(n)) for v, s, n in (await self.session.execute(query)).all()]

    async def variant_events(self, campaign_id: int) -> list[tuple[int | None, str, int]]:
        """(A/B group, event type, count): each event joined to its recipient's ledger row."""
        query = (
            select(Delivery.variant, Event.type, func.count())
            .join(
                Delivery,
                (Delivery.campaign_id == Event.campaign_id) & (Delivery.subscriber_id == Event.subscriber_id),
            )
            .where(Event.campaign_id == campaign_id)
            .group_by(Delivery.variant, Event.type)
        )
        return [(v, str(t), int(n)) for v, t, n in (await self.session.execute(query)).all()]

    async def ledger(self, campaign_id: int) -> list[tuple[str, str | None, int]]:
        """(status, reason, count) of the campaign's ledger rows; the reason only where it classifies
        a failure (rejected, failed) or marks a cancelled row."""
        reasoned = (DeliveryStatus.REJECTED, DeliveryStatus.FAILED, DeliveryStatus.EXPIRED)
        reason = case((Delivery.status.in_(reasoned), Delivery.last_error), else_=None)
        query = (
            select(Delivery.status, reason, func.count())
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.status, reason)
        )
        return [(str(s), r, int(n)) for s, r, n in (await self.session.execute(query)).all()]

    async def outcomes(
        self,
        campaign_id: int,
        after_id: int | None,
        limit: int,
        *,
        status: str | None,
        reason: str | None,
        min_attempts: int | None,
    ) -> list[tuple[int, str, str, str, int, str | None, int | None, datetime]]:
        """(delivery id, reg_id, platform, status, attempts, reason, best hour, updated_at), in ledger
        order."""
        query = (
            select(
                Delivery.id,
                Subscriber.reg_id,
                Subscriber.platform,
                Delivery.status,
                Delivery.attempts,
                Delivery.last_error,
                Delivery.best_hour,
                Delivery.updated_at,
            )
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.campaign_id == campaign_id)
            .order_by(Delivery.id)
            .limit(limit)
        )
        if after_id is not None:
            query = query.where(Delivery.id > after_id)
        if status is not None:
            query = query.where(Delivery.status == status)
        if reason is not None:
            query = query.where(Delivery.last_error.startswith(reason, autoescape=True))
        if min_attempts is not None:
            query = query.where(Delivery.attempts >= min_attempts)
        rows = (await self.session.execute(query)).all()
        return [(int(i), str(g), str(p), str(s), int(a), e, h, u) for i, g, p, s, a, e, h, u in rows]

    async def series(self, campaign_id: int, bucket_s: int) -> list[tuple[int, str, int]]:
        """(bucket start as UNIX seconds, kind, count): sends by when they were recorded, engagement
        by when it was reported."""
        sent_bucket = epoch_bucket(self.session, Delivery.updated_at, bucket_s).label("bucket")
        sent = (
            select(sent_bucket, func.count())
            .where(Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.SENT)
            .group_by(sent_bucket)
        )
        event_bucket = epoch_bucket(self.session, Event.created_at, bucket_s).label("bucket")
        events = (
            select(event_bucket, Event.type, func.count())
            .where(Event.campaign_id == campaign_id)
            .group_by(event_bucket, Event.type)
        )
        found = [(int(b), "sent", int(n)) for b, n in (await self.session.execute(sent)).all()]
        found += [(int(b), str(t), int(n)) for b, t, n in (await self.session.execute(events)).all()]
        return sorted(found)

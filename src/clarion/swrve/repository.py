"""All SQL of the Swrve-compatible surface: Push API campaigns, batches, their reports and users."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, literal, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.models import (
    FINISHED_CAMPAIGN_STATUSES,
    FOLDED_COUNTERS,
    Batch,
    BatchReport,
    BatchStatus,
    Campaign,
    Delivery,
    DeliveryStatus,
    Event,
    PushCampaign,
    Subscriber,
)

# Users looked up at once: a batch of 256 KB may name thousands; no giant IN lists.
LOOKUP_CHUNK = 500


class SwrveRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: PushCampaign | Batch) -> None:
        self.session.add(row)
        await self.session.flush()

    async def push_campaign_by_key_hash(self, key_hash: str) -> PushCampaign | None:
        query = select(PushCampaign).where(PushCampaign.push_key_hash == key_hash)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def push_campaigns(self, app_id: int) -> list[PushCampaign]:
        query = select(PushCampaign).where(PushCampaign.app_id == app_id).order_by(PushCampaign.id.desc())
        return list((await self.session.execute(query)).scalars())

    async def set_push_key_hash(self, push: PushCampaign, key_hash: str) -> None:
        push.push_key_hash = key_hash
        await self.session.flush()

    async def batches_since(self, app_id: int, since: datetime) -> list[datetime]:
        query = select(Batch.created_at).where(Batch.app_id == app_id, Batch.created_at >= since)
        return list((await self.session.execute(query.order_by(Batch.created_at))).scalars())

    async def push_campaign(self, push_campaign_id: int) -> PushCampaign | None:
        return await self.session.get(PushCampaign, push_campaign_id)

    async def batch(self, batch_id: str) -> Batch | None:
        return await self.session.get(Batch, batch_id)

    async def claim_batch(
        self, batch_id: str, attempts: int, now: datetime, lease_until: datetime
    ) -> Batch | None:
        """The batch, for this processor alone, if it is still accepted and at `attempts`.

        The attempt count is the job's ticket: a job queued twice for the same attempt (the accepting
        request's and the sweep's), or one left from an earlier attempt, finds the count moved on.
        """
        result = await self.session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.status == BatchStatus.ACCEPTED, Batch.attempts == attempts)
            .values(lease_until=lease_until, attempts=Batch.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        return await self.session.get(Batch, batch_id, populate_existing=True)

    async def lapsed_batches(
        self, now: datetime, queued_until: datetime, limit: int
    ) -> list[tuple[str, int]]:
        """(id, attempts) of accepted batches whose lease ran out (lost job, failed or dead processor).

        They are left alone until `queued_until`, the time their new job may wait in the queue.
        """
        lapsed = or_(Batch.lease_until.is_(None), Batch.lease_until < now)
        query = select(Batch.id, Batch.attempts).where(Batch.status == BatchStatus.ACCEPTED, lapsed)
        found: list[tuple[str, int]] = []
        for batch_id, attempts in (
            await self.session.execute(query.order_by(Batch.created_at).limit(limit))
        ).all():
            result = await self.session.execute(
                update(Batch)
                .where(
                    Batch.id == batch_id,
                    Batch.status == BatchStatus.ACCEPTED,
                    Batch.attempts == attempts,
                    lapsed,
                )
                .values(lease_until=queued_until)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                found.append((str(batch_id), int(attempts)))
        return found

    async def link_campaign(self, batch_id: str, campaign_id: int) -> None:
        await self.session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(campaign_id=campaign_id)
            .execution_options(synchronize_session=False)
        )

    async def mark_processed(self, batch_id: str, *, total_users: int | None = None) -> None:
        values: dict[str, Any] = {"status": BatchStatus.PROCESSED}
        if total_users is not None:
            values["total_users"] = total_users
        await self.session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def reset_leases(self, now: datetime) -> None:
        """After an in-process engine's restart nothing it was processing is held any more."""
        await self.session.execute(
            update(Batch)
            .where(Batch.status == BatchStatus.ACCEPTED)
            .values(lease_until=now)
            .execution_options(synchronize_session=False)
        )

    async def release_queued(self, now: datetime, held_until: datetime) -> None:
        """The queue lost its jobs: accepted batches waiting in it are due now.

        A batch being processed holds a lease of at most `held_until`; one waiting in the queue was
        left alone longer (the queue's grace), which is how the two are told apart.
        """
        await self.session.execute(
            update(Batch)
            .where(Batch.status == BatchStatus.ACCEPTED, Batch.lease_until > held_until)
            .values(lease_until=now)
            .execution_options(synchronize_session=False)
        )

    async def devices(self, app_id: int, column: str, ids: Sequence[str]) -> list[tuple[str, int, str]]:
        """(user id, subscriber id, platform) of the active devices of these users."""
        key = Subscriber.user_id if column == "swrve_user_id" else Subscriber.external_user_id
        found: list[tuple[str, int, str]] = []
        for start in range(0, len(ids), LOOKUP_CHUNK):
            query = select(key, Subscriber.id, Subscriber.platform).where(
                Subscriber.app_id == app_id,
                Subscriber.active.is_(True),
                key.in_(ids[start : start + LOOKUP_CHUNK]),
            )
            query = query.order_by(Subscriber.id)  # a user's devices in a stable order, for the report
            found.extend((str(u), int(s), str(p)) for u, s, p in (await self.session.execute(query)).all())
        return found

    async def known_users(self, app_id: int, column: str, ids: Sequence[str]) -> set[str]:
        """Which of these ids belong to any subscriber, active or not."""
        key = Subscriber.user_id if column == "swrve_user_id" else Subscriber.external_user_id
        known: set[str] = set()
        for start in range(0, len(ids), LOOKUP_CHUNK):
            query = select(key).where(Subscriber.app_id == app_id, key.in_(ids[start : start + LOOKUP_CHUNK]))
            known.update(str(u) for u in (await self.session.execute(query.distinct())).scalars())
        return known

    async def replace_reports(self, batch_id: str, reports: Sequence[dict[str, Any]]) -> None:
        await self.session.execute(delete(BatchReport).where(BatchReport.batch_id == batch_id))
        if reports:
            rows = [{"batch_id": batch_id, "seq": seq, **report} for seq, report in enumerate(reports)]
            await self.session.execute(insert(BatchReport), rows)

    async def reports(self, batch_id: str) -> list[BatchReport]:
        query = select(BatchReport).where(BatchReport.batch_id == batch_id).order_by(BatchReport.seq)
        return list((await self.session.execute(query)).scalars())

    async def ledger(
        self, campaign_id: int
    ) -> list[tuple[DeliveryStatus, str | None, dict[str, Any] | None]]:
        """(status, last error, params) of every recipient of a batch's campaign: bounded by the batch."""
        query = select(Delivery.status, Delivery.last_error, Delivery.params).where(
            Delivery.campaign_id == campaign_id
        )
        rows = (await self.session.execute(query.order_by(Delivery.id))).all()
        return [(DeliveryStatus(s), e, p) for s, e, p in rows]

    async def campaign_counters(self, push_campaign_id: int) -> tuple[dict[str, int], dict[str, int], int]:
        """Ledger statuses, engagement events and the number of batches of one Push API campaign.

        Statuses count the ledger rows that remain plus those retention folded into the campaigns'
        counters, in one statement (one snapshot: a fold committing meanwhile counts once).
        """
        campaigns = select(Campaign.id).where(Campaign.push_campaign_id == push_campaign_id)
        remaining = (
            select(Delivery.status, func.count())
            .where(Delivery.campaign_id.in_(campaigns))
            .group_by(Delivery.status)
        )
        folded = [
            select(literal(status.value), func.coalesce(func.sum(getattr(Campaign, column)), 0)).where(
                Campaign.push_campaign_id == push_campaign_id
            )
            for status, column in FOLDED_COUNTERS.items()
        ]
        events = select(Event.type, func.count()).where(Event.campaign_id.in_(campaigns))
        batches = select(func.count()).where(Batch.push_campaign_id == push_campaign_id)
        by_status: dict[str, int] = {}
        for s, n in (await self.session.execute(union_all(remaining, *folded))).all():
            by_status[str(s)] = by_status.get(str(s), 0) + int(n)
        by_event = {
            str(t): int(n) for t, n in (await self.session.execute(events.group_by(Event.type))).all()
        }
        return by_status, by_event, int((await self.session.execute(batches)).scalar_one())

    async def foldable_batch(self, horizon: datetime) -> tuple[str, int] | None:
        """A processed batch (id, campaign id) whose campaign finished before `horizon` and whose
        report is not frozen yet: retention may fold its ledger rows."""
        query = (
            select(Batch.id, Campaign.id)
            .join(Campaign, Campaign.id == Batch.campaign_id)
            .where(
                Batch.status == BatchStatus.PROCESSED,
                Batch.sent_users.is_(None),
                Campaign.status.in_(FINISHED_CAMPAIGN_STATUSES),
                func.coalesce(Campaign.finished_at, Campaign.created_at) < horizon,
            )
            .order_by(Batch.created_at)
            .limit(1)
        )
        row = (await self.session.execute(query)).first()
        return None if row is None else (str(row[0]), int(row[1]))

    async def claim_freeze(self, batch_id: str) -> bool:
        """Take the freezing of this batch's report for this transaction alone (a conditional update:
        of concurrent workers, one matches; the others find it frozen and do nothing)."""
        result = await self.session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.sent_users.is_(None))
            .values(sent_users=0)
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    async def freeze_report(self, batch_id: str, sent_users: int, warnings: Sequence[dict[str, Any]]) -> None:
        """Keep what the ledger rows said (users reached, per-user warnings) before they are folded."""
        await self.session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(sent_users=sent_users)
            .execution_options(synchronize_session=False)
        )
        if warnings:
            query = select(func.coalesce(func.max(BatchReport.seq), -1)).where(
                BatchReport.batch_id == batch_id
            )
            last = int((await self.session.execute(query)).scalar_one())
            rows = [
                {"batch_id": batch_id, "seq": last + 1 + offset, "kind": "warning", **warning}
                for offset, warning in enumerate(warnings)
            ]
            await self.session.execute(insert(BatchReport), rows)

"""The deliver task: claim a job's recipients, send to each, record every outcome in the ledger."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from clarion.db import Database, utcnow
from clarion.delivery import policy
from clarion.delivery.context import CampaignContext, ContextCache
from clarion.delivery.repository import Claimed, LedgerRepository
from clarion.delivery.senders import Sender, Transmit
from clarion.provider.outcome import Outcome, Retry

log = logging.getLogger("clarion.delivery")

# Recipients prepared (for Web Push, encrypted) back to back before any of them is sent: the
# default lane count, so that one window keeps a job's lanes busy while the next is prepared.
PREPARE_WINDOW = 64


class Deliverer:
    def __init__(
        self,
        db: Database,
        senders: Mapping[str, Sender],
        *,
        lease_s: float,
        concurrency: int,
        retry_base_s: float,
        retry_max_s: float,
    ) -> None:
        self.db = db
        self.senders = senders
        self.lease_s = lease_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        # The process-wide cap on requests in flight; each job runs up to that many lanes.
        self._limit = asyncio.Semaphore(concurrency)
        self._lanes = concurrency
        self._contexts = ContextCache()

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(self.senders)

    async def run(self, campaign_id: int, delivery_ids: Sequence[int], owner: str) -> int:
        """Deliver one job; returns how many recipients were attempted."""
        now = utcnow()
        async with self.db.session() as session:
            lease_until = now + timedelta(seconds=self.lease_s)
            claimed = await LedgerRepository(session).claim(delivery_ids, owner, now, lease_until)
            context = await self._contexts.get(session, campaign_id) if claimed else None
        if not claimed or context is None:
            return 0
        outcomes = await self._send_all(context, claimed)
        await self._record(context, claimed, outcomes)
        return len(claimed)

    async def _send_all(self, context: CampaignContext, claimed: Sequence[Claimed]) -> list[Outcome]:
        """Prepare a window of recipients back to back, then hand it to the job's sending lanes.

        Preparing (encrypting) many messages in a row, instead of alternating encryption and HTTP
        per message, keeps each phase's code and data in the CPU caches: ≈ 60 µs less per Web Push
        message here (docs/architecture.md). The queue holds at most one window: the next one is
        prepared while the lanes send this one, and a request that hangs holds up one lane only.
        """
        outcomes: list[Outcome] = [Retry("not attempted")] * len(claimed)
        queue: asyncio.Queue[tuple[int, Transmit] | None] = asyncio.Queue(PREPARE_WINDOW)
        lanes = [
            asyncio.create_task(self._lane(queue, outcomes)) for _ in range(min(self._lanes, len(claimed)))
        ]
        try:
            for start in range(0, len(claimed), PREPARE_WINDOW):
                for item in self._prepare_window(context, claimed, start, outcomes):
                    await queue.put(item)
            for _ in lanes:
                await queue.put(None)
            await asyncio.gather(*lanes)
        finally:
            for lane in lanes:
                lane.cancel()  # only if the job itself was cancelled: otherwise all have returned
        return outcomes

    def _prepare_window(
        self, context: CampaignContext, claimed: Sequence[Claimed], start: int, outcomes: list[Outcome]
    ) -> list[tuple[int, Transmit]]:
        now = utcnow()
        window: list[tuple[int, Transmit]] = []
        for index in range(start, min(start + PREPARE_WINDOW, len(claimed))):
            prepared = self._prepare(context, claimed[index], now)
            if isinstance(prepared, Outcome):
                outcomes[index] = prepared
            else:
                window.append((index, prepared))
        return window

    async def _lane(self, queue: asyncio.Queue[tuple[int, Transmit] | None], outcomes: list[Outcome]) -> None:
        while (item := await queue.get()) is not None:
            index, transmit = item
            async with self._limit:
                try:
                    outcomes[index] = await transmit()
                except Exception as exc:
                    # Providers turn what they expect into outcomes; anything else is one recipient's
                    # problem, retried like a network error, not the end of the job's other sends.
                    log.exception("sending to one recipient failed unexpectedly")
                    outcomes[index] = Retry(f"{type(exc).__name__}: {exc}")

    def _prepare(self, context: CampaignContext, recipient: Claimed, now: datetime) -> Outcome | Transmit:
        if now >= context.expires_at and context.ttl_s > 0:
            return Retry("the TTL ran out before the attempt")
        sender = self.senders.get(recipient.platform)
        if sender is None:
            return Retry(f"no sender for platform {recipient.platform}")
        return sender.prepare(context, recipient, now)

    async def _record(
        self, context: CampaignContext, claimed: Sequence[Claimed], outcomes: Sequence[Outcome]
    ) -> None:
        now = utcnow()
        finals: dict[tuple[str, str | None], list[int]] = defaultdict(list)
        retries: list[tuple[int, policy.RetryAt]] = []
        gone_subscribers: list[int] = []
        for recipient, outcome in zip(claimed, outcomes, strict=True):
            decision = policy.decide(
                outcome,
                attempts=recipient.attempts,
                now=now,
                expires_at=context.expires_at,
                base_s=self.retry_base_s,
                max_s=self.retry_max_s,
            )
            if isinstance(decision, policy.RetryAt):
                retries.append((recipient.delivery_id, decision))
                continue
            finals[(decision.status, _short(decision.reason))].append(recipient.delivery_id)
            if decision.status == "gone":
                gone_subscribers.append(recipient.subscriber_id)
        async with self.db.session() as session:
            ledger = LedgerRepository(session)
            for (status, reason), ids in finals.items():
                await ledger.finish(ids, status, now, reason)
            for delivery_id, retry in retries:
                await ledger.retry_later(delivery_id, retry.at, retry.reason, now)
            await ledger.deactivate(gone_subscribers, now)
            if not retries:
                await ledger.complete_if_done(context.campaign_id, now)


def _short(reason: str | None) -> str | None:
    return reason[:255] if reason else None

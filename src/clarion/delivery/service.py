"""The deliver task: claim a job's recipients, send to each, record every outcome in the ledger.

Outcomes are recorded as they arrive, in small batches, and the job's rows are leased briefly and
renewed while it runs (delivery.recorder).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from clarion.app_tenant.credentials import PROVIDER_FOR_PLATFORM
from clarion.app_tenant.repository import CredentialRepository
from clarion.db import Database, utcnow
from clarion.delivery.context import CampaignContext, ContextCache
from clarion.delivery.lanes import SendLanes
from clarion.delivery.recorder import FLUSH_ROWS, Job, Recorder
from clarion.delivery.repository import Claimed, LedgerRepository
from clarion.provider.base import Provider, Transmit
from clarion.provider.outcome import Gone, Outcome, Retry

log = logging.getLogger("clarion.delivery")

# Recipients prepared (for Web Push, encrypted) back to back before any of them is sent: as many
# as the default lane count, so one window can fill the lanes while the next is prepared.
PREPARE_WINDOW = 64
# A subscriber that unsubscribed (or whose push service said it went) after the fan-out gave it a
# row: nothing is sent to it, and its row ends as gone, as a 410 would end it.
UNSUBSCRIBED = "the subscriber unsubscribed before the send"


class Deliverer:
    def __init__(
        self,
        db: Database,
        providers: Mapping[str, Provider],
        *,
        lease_s: float,
        renew_s: float,
        concurrency: int,
        retry_base_s: float,
        retry_max_s: float,
    ) -> None:
        self.db = db
        self.providers = providers
        self.lease_s = lease_s
        # The process's requests in flight, shared by its jobs: `concurrency` of them at most.
        self._lanes = SendLanes(concurrency)
        self._contexts = ContextCache()
        self.recorder = Recorder(
            db,
            retry_base_s=retry_base_s,
            retry_max_s=retry_max_s,
            lease_s=lease_s,
            renew_s=renew_s,
            flush_rows=min(FLUSH_ROWS, concurrency),
        )

    async def close(self) -> None:
        """After the last job: stop the sending lanes, record what is left, close the providers' clients."""
        await self._lanes.close()
        await self.recorder.close()
        for provider in self.providers.values():
            await provider.close()

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(self.providers)

    async def run(self, campaign_id: int, delivery_ids: Sequence[int], owner: str) -> int:
        """Deliver one job; returns how many recipients were attempted, once all are recorded."""
        now = utcnow()
        async with self.db.session() as session:
            lease_until = now + timedelta(seconds=self.lease_s)
            claimed = await LedgerRepository(session).claim(delivery_ids, owner, now, lease_until)
            context = await self._contexts.get(session, campaign_id) if claimed else None
        if not claimed or context is None:
            return 0
        job = Job(self.recorder, context, claimed, owner)
        self.recorder.hold(job)
        try:
            await self._send_all(job)
            await job.recorded
        finally:
            self.recorder.release(job)
        if job.credentials_used or job.credentials_failed:
            await self._note_credentials(context.app_id, job)
        return len(claimed)

    async def _note_credentials(self, app_id: int, job: Job) -> None:
        """When the app's native credentials were last taken, or refused and why (shown by /v1); one
        short transaction a job, best effort: the job's outcomes are recorded already."""
        now = utcnow()
        try:
            async with self.db.session() as session:
                repo = CredentialRepository(session)
                for platform in sorted(job.credentials_used):
                    await repo.checked(app_id, PROVIDER_FOR_PLATFORM[platform], now, None)
                for platform, reason in sorted(job.credentials_failed.items()):
                    await repo.checked(app_id, PROVIDER_FOR_PLATFORM[platform], now, reason)
        except SQLAlchemyError as exc:
            log.warning("app %s: credentials' last use not recorded: %s", app_id, exc)

    async def _send_all(self, job: Job) -> None:
        """Prepare a window of recipients back to back, then queue its requests for the lanes.

        Preparing (encrypting) many messages in a row, instead of alternating encryption and HTTP
        per message, keeps each phase's code and data in the CPU caches: ≈ 60 µs less per Web Push
        message here (docs/architecture.md). The next window is prepared while the lanes send this
        one; a request that hangs holds up one lane, not the job's other sends.
        """
        for start in range(0, len(job.claimed), PREPARE_WINDOW):
            await self._lanes.submit(job, self._prepare_window(job, start))

    def _prepare_window(self, job: Job, start: int) -> list[tuple[int, Transmit]]:
        now = utcnow()
        window: list[tuple[int, Transmit]] = []
        for index in range(start, min(start + PREPARE_WINDOW, len(job.claimed))):
            prepared = self._prepare(job.context, job.claimed[index], now)
            if isinstance(prepared, Outcome):
                job.done(index, prepared)
            else:
                window.append((index, prepared))
        return window

    def _prepare(self, context: CampaignContext, recipient: Claimed, now: datetime) -> Outcome | Transmit:
        if now >= context.expires_at and context.ttl_s > 0:
            return Retry("the TTL ran out before the attempt")
        if context.give_up_at is not None and now >= context.give_up_at:
            return Retry("the time limit ran out before the attempt")
        if not recipient.active:
            return Gone(UNSUBSCRIBED)
        provider = self.providers.get(recipient.platform)
        if provider is None:
            return Retry(f"no sender for platform {recipient.platform}")
        if recipient.variant is not None:  # an A/B campaign: the recipient's variant's content
            context = context.variant(recipient.variant)
        return provider.prepare(context, recipient, now)

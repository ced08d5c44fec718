"""The deliver task: claim a job's recipients, send to each, record every outcome in the ledger.

Outcomes are recorded as they arrive, in small batches, and the job's rows are leased briefly and
renewed while it runs (delivery.recorder).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from clarion import metrics
from clarion.app_tenant.credentials import PROVIDER_FOR_PLATFORM
from clarion.app_tenant.repository import CredentialRepository
from clarion.campaign.personal import Personal
from clarion.campaign.repository import CampaignRepository
from clarion.db import Database, utcnow
from clarion.delivery import credentials, policy
from clarion.delivery.context import CampaignContext, ContextCache
from clarion.delivery.lanes import SendLanes
from clarion.delivery.pace import Pacer
from clarion.delivery.recorder import FLUSH_ROWS, Job, Recorder
from clarion.delivery.repository import Claimed, LedgerRepository
from clarion.event import service as events
from clarion.models import CampaignStatus
from clarion.provider.base import Provider, Transmit
from clarion.provider.outcome import Gone, Outcome, Retry

log = logging.getLogger("clarion.delivery")

# Recipients prepared (for Web Push, encrypted) back to back before any of them is sent: as many
# as the default lane count, so one window can fill the lanes while the next is prepared.
PREPARE_WINDOW = 64
# A subscriber that unsubscribed (or whose push service said it went) after the fan-out gave it a
# row: nothing is sent to it, and its row ends as gone, as a 410 would end it.
UNSUBSCRIBED = "the subscriber unsubscribed before the send"
# Rows of a job that its campaign's pause stopped: pending again, due when it is resumed.
PAUSED = "paused before the send"
# Rows held back because their push service asked this app to slow down (429 or 503, Retry-After).
HELD = "held: the push service asked to slow down"
CAPPED = "frequency cap"
# How old a worker's knowledge of a campaign's pause may be: sends stop within this and a send.
STATUS_FRESH_S = 1.0


async def _cap(
    ledger: LedgerRepository, context: CampaignContext, claimed: list[Claimed], now: datetime
) -> list[Claimed]:
    """End as `capped` (not a failure) the recipients the app's frequency cap has reached; the rest."""
    assert context.frequency_cap is not None
    assert context.frequency_cap_period_s is not None
    since = now - timedelta(seconds=context.frequency_cap_period_s)
    subscriber_ids = [recipient.subscriber_id for recipient in claimed]
    await ledger.serialize_cap(context.app_id)
    over = await ledger.over_cap(context.campaign_id, subscriber_ids, context.frequency_cap, since)
    if not over:
        return claimed
    capped = [recipient for recipient in claimed if recipient.subscriber_id in over]
    await ledger.cap([recipient.delivery_id for recipient in capped], now, CAPPED)
    metrics.CAPPED.inc(len(capped))
    # Their `delivery.capped` events, in the transaction that ends their rows (docs/webhooks.md).
    outcomes: events.Outcomes = {}
    for recipient in capped:
        key = (context.app_id, context.campaign_id, recipient.subscriber_id, recipient.platform)
        events.delivery_ended(outcomes, key, "capped", CAPPED)
    await events.record_many(ledger.session, events.delivery_groups(outcomes, now))
    return [recipient for recipient in claimed if recipient.subscriber_id not in over]


def _hand_back(job: Job, indexes: Iterable[int]) -> None:
    """The campaign was paused: these rows end their attempt unsent, pending until it is resumed."""
    for index in indexes:
        job.done(index, Retry(PAUSED))


class PacedJob(Job):
    """A job whose push services' requests to slow down (Retry-After) hold the app for every worker."""

    def __init__(self, pacer: Pacer | None, *args: Any) -> None:
        super().__init__(*args)
        self.pacer = pacer

    def done(self, index: int, outcome: Outcome) -> asyncio.Future[None]:
        if (
            isinstance(outcome, Retry)
            and outcome.after_s
            and self.pacer is not None
            and outcome.reason != HELD
        ):
            self.pacer.slow_down(self.context.app_id, self.claimed[index], outcome.after_s)
        return super().done(index, outcome)


class CampaignStates:
    """Whether campaigns are paused, as this process last read (at most STATUS_FRESH_S ago)."""

    def __init__(self) -> None:
        self._read: dict[int, tuple[float, bool]] = {}

    async def paused(self, db: Database, campaign_id: int) -> bool:
        now = time.monotonic()
        read_at, paused = self._read.get(campaign_id, (float("-inf"), False))
        if now - read_at < STATUS_FRESH_S:
            return paused
        try:
            async with db.session() as session:
                status = await CampaignRepository(session).status_of(campaign_id)
        except SQLAlchemyError:
            return paused  # the database is away: the job goes on as last known, not fails mid-way
        paused = status == CampaignStatus.PAUSED
        if len(self._read) > 256:
            self._read.clear()
        self._read[campaign_id] = (now, paused)
        return paused


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
        pacer: Pacer | None = None,
    ) -> None:
        self.db = db
        self.providers = providers
        self.lease_s = lease_s
        # The process's requests in flight, shared by its jobs: `concurrency` of them at most.
        self._lanes = SendLanes(concurrency)
        self._contexts = ContextCache()
        self._campaigns = CampaignStates()
        self.pacer = pacer
        self._refused = credentials.RefusedCredentials()
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
        if self.pacer is not None:
            await self.pacer.close()

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(self.providers)

    async def run(self, campaign_id: int, delivery_ids: Sequence[int], owner: str) -> int:
        """Deliver one job; returns how many recipients were attempted, once all are recorded."""
        now, claimed_at = utcnow(), asyncio.get_running_loop().time()
        async with self.db.session() as session:
            lease_until = now + timedelta(seconds=self.lease_s)
            ledger = LedgerRepository(session)
            claimed = await ledger.claim(delivery_ids, owner, now, lease_until, campaign_id)
            context = await self._contexts.get(session, campaign_id) if claimed else None
            if claimed and context is not None and context.frequency_cap is not None:
                claimed = await _cap(ledger, context, claimed, now)
            if context is not None and context.personal is not None:
                claimed = await _with_profiles(ledger, context.personal, claimed)
            if context is not None:
                await self._refused.load(session, context.app_id)
        if not claimed or context is None:
            return 0
        claimed, send_at = await self._pace(context, claimed)
        if not claimed:
            return 0
        job = PacedJob(self.pacer, self.recorder, context, claimed, owner)
        job.lease_ends = claimed_at + self.lease_s  # from before the claim: never later than the ledger's
        self.recorder.hold(job)
        try:
            await self._send_all(job, send_at)
            await job.recorded
        finally:
            self.recorder.release(job)
        if job.credentials_used or job.credentials_failed:
            await self._note_credentials(context.app_id, job)
        if job.credentials_refused:
            await self._flag_refused(context.app_id, job.credentials_refused)
        return len(claimed)

    async def _pace(
        self, context: CampaignContext, claimed: list[Claimed]
    ) -> tuple[list[Claimed], list[float] | None]:
        """The rows to send now, in turn order, with their turns (None: all at once, as unpaced)."""
        schedule = await self.pacer.schedule(context, claimed) if self.pacer is not None else None
        if schedule is None:
            return claimed, None
        await self._defer(claimed, schedule.later)
        send_at = [at for _, at in schedule.send]
        in_turn = [claimed[index] for index, _ in schedule.send]
        assert self.pacer is not None
        if send_at and send_at[-1] <= self.pacer.clock.time():
            return in_turn, None  # every turn has come: sent by windows, the fast way
        return in_turn, send_at

    async def _defer(self, claimed: Sequence[Claimed], later: Sequence[tuple[int, float]]) -> None:
        """Rows whose turn is past the horizon go back to the ledger until then (delivery.pace)."""
        if not later:
            return
        metrics.PACING_DEFERRED.inc(len(later))
        rows = [(claimed[index].delivery_id, datetime.fromtimestamp(at, UTC)) for index, at in later]
        async with self.db.session() as session:
            await LedgerRepository(session).defer(rows, utcnow())

    async def _flag_refused(self, app_id: int, refusals: dict[str, str]) -> None:
        """Known here at once; flagged in the database once (best effort, as `_note_credentials`)."""
        self._refused.note(app_id, refusals)
        try:
            await credentials.credentials_rejected(self.db, app_id, refusals)
        except SQLAlchemyError as exc:
            log.warning("app %s: refused credentials not flagged: %s", app_id, exc)

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
                    provider = PROVIDER_FOR_PLATFORM[platform]
                    # Announced once, when delivery.credentials flags the refusal (not per job).
                    await repo.checked(app_id, provider, now, reason)
        except SQLAlchemyError as exc:
            log.warning("app %s: credentials' last use not recorded: %s", app_id, exc)

    async def _send_all(self, job: Job, send_at: Sequence[float] | None = None) -> None:
        """Prepare a window of recipients back to back, then queue its requests for the lanes.

        Preparing (encrypting) many messages in a row, instead of alternating encryption and HTTP
        per message, keeps each phase's code and data in the CPU caches: ≈ 60 µs less per Web Push
        message here (docs/architecture.md). The next window is prepared while the lanes send this
        one; a request that hangs holds up one lane, not the job's other sends. Paced rows
        (`send_at`, delivery.pace) are queued each at its time. Between windows, and between paced
        sends, a paused campaign stops the job: its unsent rows go back to pending.
        """
        total = len(job.claimed)
        for start in range(0, total, PREPARE_WINDOW):
            if await self._campaigns.paused(self.db, job.context.campaign_id):
                _hand_back(job, range(start, total))
                return
            window = self._prepare_window(job, start)
            if send_at is None:
                await self._lanes.submit(job, window)
                continue
            assert self.pacer is not None
            for position, (index, transmit) in enumerate(window):
                await self.pacer.wait_until(send_at[index])
                if await self._campaigns.paused(self.db, job.context.campaign_id):
                    _hand_back(job, [index for index, _ in window[position:]])
                    _hand_back(job, range(start + PREPARE_WINDOW, total))
                    return
                await self._lanes.submit(job, [(index, transmit)])

    def _prepare_window(self, job: Job, start: int) -> list[tuple[int, Transmit]]:
        """The window's recipients in two passes: each one's content first (its checks, its language,
        its templates rendered), then every encryption back to back. Rendering between encryptions
        cost a templated campaign ≈ 30 µs more per message than the render itself (the two evict
        each other's code and data from the CPU caches: bench/personalization.py)."""
        now = utcnow()
        indices = range(start, min(start + PREPARE_WINDOW, len(job.claimed)))
        resolved = [(index, self._resolve(job, job.claimed[index], now)) for index in indices]
        window: list[tuple[int, Transmit]] = []
        for index, own in resolved:
            if isinstance(own, Outcome):
                job.done(index, own)
                continue
            context, provider = own
            prepared = provider.prepare(context, job.claimed[index], now)
            if isinstance(prepared, Outcome):
                job.done(index, prepared)
            else:
                window.append((index, prepared))
        return window

    def _resolve(
        self, job: Job, recipient: Claimed, now: datetime
    ) -> Outcome | tuple[CampaignContext, Provider]:
        """What the recipient is to be sent (its own content) and by which provider, or why not."""
        context = job.context
        if now >= context.expires_at and context.ttl_s > 0:
            return Retry(policy.TTL_RAN_OUT)
        if context.give_up_at is not None and now >= context.give_up_at:
            return Retry(policy.TIME_LIMIT_RAN_OUT)
        if not recipient.active:
            return Gone(UNSUBSCRIBED)
        if self.pacer is not None and (until := self.pacer.held_until(context.app_id, recipient)):
            return Retry(HELD, after_s=until - self.pacer.clock.time())
        provider = self.providers.get(recipient.platform)
        if provider is None:
            return Retry(f"no sender for platform {recipient.platform}")
        refused = self._refusal(job, recipient)
        if refused is not None:
            return refused
        if recipient.variant is not None:  # an A/B campaign: the recipient's variant's content
            context = context.variant(recipient.variant)
        own = context.render_for(recipient)
        if isinstance(own, Outcome):
            return own
        return own, provider

    def _refusal(self, job: Job, recipient: Claimed) -> Outcome | None:
        """Credentials known to be refused are not used again (delivery/credentials.py)."""
        if not job.credentials_refused and not self._refused.any(job.context.app_id):
            return None  # the common case, without working out the recipient's push service
        key = credentials.key_of(recipient.platform, recipient.address)
        reason = job.credentials_refused.get(key) or self._refused.refusal(job.context.app_id, key)
        return None if reason is None else credentials.not_sent(key, reason)


async def _with_profiles(
    ledger: LedgerRepository, personal: Personal, claimed: list[Claimed]
) -> list[Claimed]:
    """The job's recipients with what their personal content is made of (only for such a campaign)."""
    profiles = await ledger.profiles([r.subscriber_id for r in claimed], templates=personal.templated)
    return [r._replace(profile=profiles.get(r.subscriber_id)) for r in claimed]

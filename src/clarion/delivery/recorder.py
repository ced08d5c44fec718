"""Outcomes into the ledger as they come, in small batches, and the leases of the rows still out.

A crash re-sends whatever was sent but not yet recorded. Recording a job's outcomes when its last
request ends (up to 500 of them) made a SIGKILL re-send 736 messages of a 20,000-recipient campaign
(issue #19). Here one writer per process records the outcomes of all its jobs as they arrive: a batch
as soon as a prepare window's worth (64) is waiting, or after FLUSH_AFTER_S when fewer are, or when a
job's last outcome is in. A crash then re-sends what was in flight plus at most about one batch.
Each batch is one transaction with one statement per final status and reason, one for its retries and
one for the subscribers gone: the same statements per recipient as recording per job, just smaller.

A lane of the Deliverer is free again only once its outcome is recorded (`Job.done` returns the
commit to wait for): what a process has sent and not yet recorded never exceeds its lanes,
`CLARION_WORKER_CONCURRENCY`. Without that bound the recorder fell behind whenever the event loop was
busy preparing (encrypting) windows: a write needs several turns of the loop, and on a loaded 2-core
machine each turn waited ~70 ms for a window's encryption, so 1,000 outcomes of a 2,000-recipient
campaign were sent and not yet recorded when `clarion serve` was SIGKILLed (chaos suite, `kill-serve`:
871 re-sent). Waiting also hands the loop back to the recorder, so its writes stay short.

The same writer looks every `renew_s` at the leases of the rows the live jobs of this process still
hold, so leases can be short: a dead worker's rows are taken over one short lease after its last
renewal, while a slow but live worker keeps its own however long a job takes. A job's rows are
renewed only when less than three `renew_s` of their lease is left: each look then leaves at least
two renewal periods (4 s by default) before a lease could lapse, and a job that ends within
`lease_s - 3 * renew_s` of its claim (2 s by default) is never renewed, a longer one every other
look. Renewing every held row at every look rewrote each row's lease (and its index entry) once
more every 2 s however soon its job ended: on the loaded 2-core machine, with 2,000 rows held for
about 3 s, about one more write per recipient.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from clarion import metrics
from clarion.db import Database, utcnow
from clarion.delivery import credentials, journal, policy
from clarion.delivery.context import CampaignContext
from clarion.delivery.failures import FailureLog
from clarion.delivery.repository import Claimed, LedgerRepository
from clarion.event import service as events
from clarion.event.repository import NewEvent
from clarion.models import DeliveryStatus
from clarion.provider.outcome import CHANNEL_PREFIX, Delivered, Gone, Outcome, Rejected

log = logging.getLogger("clarion.delivery")

# Outcomes waiting when a batch is written at once: the Deliverer's prepare window (fewer when the
# process has fewer lanes: each lane waits for its outcome's batch, so no more can come).
FLUSH_ROWS = 64
# The longest an outcome waits for a batch to fill (a slow trickle of answers).
FLUSH_AFTER_S = 0.05
# A batch whose write failed (the database away) is tried again after a pause that doubles up to the
# longest; past the patience its jobs fail and its rows are re-sent once their lease lapses.
WRITE_PAUSE_S = (0.25, 2.0)
WRITE_PATIENCE_S = 30.0
# One status per reason: a reason longer than the ledger's column is cut.
REASON_CHARS = 255
RETRY = "retry"


class Job:
    """One deliver job's claimed rows on their way from the lanes to the ledger (a `lanes.Sink`)."""

    def __init__(self, recorder: Recorder, context: CampaignContext, claimed: Sequence[Claimed], owner: str):
        self.recorder = recorder
        self.context = context
        self.claimed = claimed
        self.owner = owner
        # When (the event loop's clock) the rows' lease lapses, from the claim or the last renewal.
        self.lease_ends = asyncio.get_running_loop().time() + recorder.lease_s
        self.ids = [recipient.delivery_id for recipient in claimed]
        self.unreported = len(claimed)  # outcomes not yet handed to the recorder
        self.unrecorded = len(claimed)  # outcomes not yet committed
        self.retried = False
        self.counts: Counter[str] = Counter()
        self.recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Native platforms whose credentials a push service took (used) or refused (failed, with why).
        self.credentials_used: set[str] = set()
        self.credentials_failed: dict[str, str] = {}
        # Credentials refused as such (credentials.key_of -> the first reason): flagged after the job,
        # and the job's other recipients there are not sent to.
        self.credentials_refused: dict[str, str] = {}

    def done(self, index: int, outcome: Outcome) -> asyncio.Future[None]:
        """Hand an outcome to the recorder; returns what resolves once it is recorded (or given up)."""
        recipient = self.claimed[index]
        platform = recipient.platform
        if isinstance(outcome, Rejected) and outcome.credentials:
            self.credentials_refused.setdefault(
                credentials.key_of(platform, recipient.address), outcome.reason
            )
        if platform != "web":  # Web Push has no credentials of the app's to report on
            if isinstance(outcome, Delivered | Gone):
                self.credentials_used.add(platform)
            elif (
                isinstance(outcome, Rejected)
                and outcome.reason.startswith(CHANNEL_PREFIX)
                and not outcome.reason.startswith(credentials.NOT_SENT_PREFIX)
            ):
                self.credentials_failed[platform] = outcome.reason
        self.unreported -= 1
        return self.recorder.add(self, index, outcome, last=self.unreported == 0)

    def finish(self, error: BaseException | None = None) -> None:
        if self.recorded.done():
            return
        if error is None:
            self.recorded.set_result(None)
        else:
            self.recorded.set_exception(error)


@dataclass
class _Batch:
    """What one transaction writes."""

    now: datetime
    finals: dict[tuple[DeliveryStatus, str | None], list[int]] = field(
        default_factory=lambda: defaultdict(list)
    )
    retries: list[tuple[int, datetime, str]] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    # Subscribers this batch reached (`sent`) with a failure streak to end, and ones a campaign gave up
    # on (policy.unreached).
    reached: list[int] = field(default_factory=list)
    unreached: list[int] = field(default_factory=list)
    per_job: Counter[Job] = field(default_factory=Counter)
    statuses: dict[Job, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_provider: Counter[tuple[str, str]] = field(default_factory=Counter)  # (platform, status)
    # Webhooks' and the feed's (event/): campaigns finished, and the delivery outcomes by campaign.
    new_events: list[NewEvent] = field(default_factory=list)
    outcomes: events.Outcomes = field(default_factory=dict)

    def completing(self) -> list[Job]:
        """The jobs whose last outcomes are in this batch."""
        return [job for job, count in self.per_job.items() if count == job.unrecorded]


class Recorder:
    def __init__(
        self,
        db: Database,
        *,
        retry_base_s: float,
        retry_max_s: float,
        lease_s: float,
        renew_s: float,
        flush_rows: int = FLUSH_ROWS,
    ) -> None:
        self.db = db
        self.flush_rows = flush_rows
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.lease_s = lease_s
        self.renew_s = renew_s
        self.failures = FailureLog()
        self._buffer: list[tuple[Job, int, Outcome]] = []
        # Resolved once the outcomes now in the buffer are written (or given up): what lanes wait for.
        self._buffered: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._held: set[Job] = set()
        self._task: asyncio.Task[None] | None = None
        self._renewal_failing = False
        self._closing = False

    def hold(self, job: Job) -> None:
        """From its claim until its outcomes are recorded, a job's rows are renewed with the rest."""
        self._held.add(job)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="delivery-recorder")

    def release(self, job: Job) -> None:
        self._held.discard(job)
        if not job.recorded.done():
            job.recorded.cancel()  # its run was cancelled: nobody awaits it (its outcomes still count)

    def add(self, job: Job, index: int, outcome: Outcome, *, last: bool) -> asyncio.Future[None]:
        self._buffer.append((job, index, outcome))
        if self._buffered is None:
            self._buffered = asyncio.get_running_loop().create_future()
        if last or len(self._buffer) >= self.flush_rows:
            self._wake.set()
        elif len(self._buffer) == 1:
            asyncio.get_running_loop().call_later(FLUSH_AFTER_S, self._wake.set)
        return self._buffered

    async def close(self) -> None:
        """Record what is still waiting (a stop after the last job), then stop.

        The writer is asked to stop, not cancelled: a cancel landing while it writes lost that batch
        and never resolved what its lanes wait for, and on Python 3.11 a cancel landing as its wake-up
        fired was swallowed by `asyncio.wait_for`, so the writer went on and this waited forever
        (`clarion serve` stopping after a campaign; the recorder tests' teardown on a loaded machine).
        """
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        await self._task
        self._task, self._closing = None, False

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + self.renew_s
        while not self._closing:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that lands as the
            # event is set (bpo-42130), and the loop would never end.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, renew_at - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            if self._buffer:
                await self._flush()
            if not self._closing and loop.time() >= renew_at:
                await self._renew()
                renew_at = loop.time() + self.renew_s
        while self._buffer:  # what came after the stop was asked for (a failed write is dropped)
            await self._flush()

    async def _flush(self) -> None:
        """Write what is waiting; while the database refuses, keep it (and what arrives) a while."""
        pause_s, longest_s = WRITE_PAUSE_S
        give_up_at = asyncio.get_running_loop().time() + WRITE_PATIENCE_S
        while self._buffer:
            batch, self._buffer = self._buffer, []
            written, self._buffered = self._buffered, None
            try:
                await self._write(batch)
                _resolve(written)
                return
            except Exception as exc:
                # Closing, a failed write is not tried again: a stop is not held up for the
                # patience, and the rows are re-sent once their lease lapses.
                if self._closing or asyncio.get_running_loop().time() >= give_up_at:
                    log.exception("recording delivery outcomes failed; their jobs fail")
                    for job in {job for job, _, _ in batch}:
                        job.finish(exc)
                    _resolve(written)
                    return
                log.warning("recording delivery outcomes failed (%s); trying again", exc)
                self._buffer = batch + self._buffer
                self._buffered = _joined(written, self._buffered)
            await asyncio.sleep(pause_s)
            pause_s = min(longest_s, pause_s * 2)

    async def _write(self, outcomes: Sequence[tuple[Job, int, Outcome]]) -> None:
        batch = self._decide(outcomes)
        completing = batch.completing()
        async with self.db.session() as session:
            ledger = LedgerRepository(session)
            for (status, reason), ids in batch.finals.items():
                await ledger.finish(ids, status, batch.now, reason)
            await ledger.retry_later(batch.retries, batch.now)
            await ledger.deactivate(batch.gone, batch.now)
            await ledger.note_reach(batch.reached, batch.unreached)
            finished = []
            for job in {job.context.campaign_id: job for job in completing if not job.retried}.values():
                campaign_id = job.context.campaign_id
                if await ledger.complete_if_done(campaign_id, batch.now):
                    finished.append((campaign_id, await ledger.status_counts(campaign_id)))
                    batch.new_events.append(
                        events.campaign_finished(job.context.app_id, campaign_id, batch.now)
                    )
            # The batch's events, in this transaction: one INSERT (docs/webhooks.md).
            await events.record_many(
                session, [*events.delivery_groups(batch.outcomes, batch.now), *batch.new_events]
            )
        metrics.outcomes_recorded(batch.by_provider)
        for job, count in batch.per_job.items():
            job.unrecorded -= count
            job.counts.update(batch.statuses[job])
        for job in completing:
            self.failures.summary(job.context.campaign_id, job.counts)
            job.finish()
        for campaign_id, counts in finished:
            journal.finished(campaign_id, counts)

    def _decide(self, outcomes: Sequence[tuple[Job, int, Outcome]]) -> _Batch:
        batch = _Batch(utcnow())
        for job, index, outcome in outcomes:
            recipient = job.claimed[index]
            decision = policy.decide(
                outcome,
                attempts=recipient.attempts,
                now=batch.now,
                expires_at=job.context.expires_at,
                give_up_at=job.context.give_up_at,
                base_s=self.retry_base_s,
                max_s=self.retry_max_s,
            )
            batch.per_job[job] += 1
            reason: str | None
            if isinstance(decision, policy.RetryAt):
                job.retried = True
                status, reason = RETRY, decision.reason
                batch.retries.append((recipient.delivery_id, decision.at, decision.reason[:REASON_CHARS]))
            else:
                status, reason = decision.status, _short(decision.reason)
                batch.finals[(decision.status, reason)].append(recipient.delivery_id)
                if decision.status == DeliveryStatus.GONE:
                    batch.gone.append(recipient.subscriber_id)
                elif decision.status == DeliveryStatus.SENT and recipient.failing:
                    batch.reached.append(recipient.subscriber_id)  # its streak starts again at 0
                elif policy.unreached(outcome, decision):
                    batch.unreached.append(recipient.subscriber_id)
                context = job.context
                recipient_of = (
                    context.app_id,
                    context.campaign_id,
                    recipient.subscriber_id,
                    recipient.platform,
                )
                events.delivery_ended(batch.outcomes, recipient_of, decision.status, reason)
            batch.statuses[job][status] += 1
            batch.by_provider[(recipient.platform, status)] += 1
            if status != DeliveryStatus.SENT:
                campaign_id = job.context.campaign_id
                self.failures.note(campaign_id, recipient.platform, recipient.address, status, reason)
        return batch

    def held_ids(self) -> list[int]:
        """The rows of this process's live jobs whose outcomes are not all recorded yet."""
        return [delivery_id for job in self._held if job.unrecorded for delivery_id in job.ids]

    async def _renew(self) -> None:
        loop = asyncio.get_running_loop()
        renewed_at = loop.time()
        # Those with less than three renewal periods of their lease left (the module's docstring).
        due = [job for job in self._held if job.unrecorded and job.lease_ends - renewed_at < 3 * self.renew_s]
        by_owner: dict[str, list[int]] = defaultdict(list)
        for job in due:
            by_owner[job.owner].extend(job.ids)
        if not by_owner:
            return
        lease_until = utcnow() + timedelta(seconds=self.lease_s)
        try:
            async with self.db.session() as session:
                ledger = LedgerRepository(session)
                for owner, ids in by_owner.items():
                    await ledger.renew(ids, owner, lease_until)
        except Exception as exc:
            if not self._renewal_failing:
                log.warning("renewing the leases of delivery rows failed (%s); trying again", exc)
            self._renewal_failing = True
            return
        for job in due:
            job.lease_ends = renewed_at + self.lease_s
        self._renewal_failing = False


def _resolve(written: asyncio.Future[None] | None) -> None:
    if written is not None and not written.done():
        written.set_result(None)


def _joined(
    first: asyncio.Future[None] | None, later: asyncio.Future[None] | None
) -> asyncio.Future[None] | None:
    """One future for two sets of outcomes now written together: the first resolves with the later."""
    if first is None or later is None:
        return first or later
    later.add_done_callback(lambda _: _resolve(first))
    return later


def _short(reason: str | None) -> str | None:
    return reason[:REASON_CHARS] if reason else None

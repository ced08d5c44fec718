"""Reporting: a batch's status and per-user report, and a Push API campaign's counters."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.delivery.policy import TIME_LIMIT_REASON
from clarion.delivery.repository import LedgerRepository
from clarion.models import App, BatchStatus, DeliveryStatus
from clarion.provider.outcome import CHANNEL_PREFIX
from clarion.swrve.repository import SwrveRepository

# How a recipient's final ledger status reads in the report (spec, warning table; none safe to resend
# but the time limit's).
_OUTCOME_REASONS = {
    DeliveryStatus.GONE: "Rejected, User Has Changed Token",
    DeliveryStatus.EXPIRED: "Failed to send a Push message",
    DeliveryStatus.FAILED: "Internal failure to send a Push message",
}
# Given up at the batch's time limit (delivery.policy.TIME_LIMIT_REASON): never attempted again.
_TIME_LIMIT = re.compile(re.escape(TIME_LIMIT_REASON).replace(r"\{\}", r"\d+"))


def _delivery_reason(status: DeliveryStatus, last_error: str | None) -> tuple[str, bool]:
    """The report's reason for a recipient's final status, and whether it is safe to resend."""
    if status == DeliveryStatus.REJECTED:
        if last_error and last_error.startswith(CHANNEL_PREFIX):
            return "Failure to send message", False  # the app's channel: every user on it alike
        return f"Failure due to: {last_error or 'the push service refused the message'}", False
    if status == DeliveryStatus.EXPIRED and last_error and _TIME_LIMIT.fullmatch(last_error):
        return last_error, True
    return _OUTCOME_REASONS.get(status, "Failure to send message"), False


def _entry(user: str | None, reason: str, safe: bool) -> dict[str, Any]:
    return {"user": user, "reason": reason, "safe_to_resend": safe}


async def status(session: AsyncSession, batch_id: str, *, app: App | None) -> dict[str, Any]:
    """The batch's report. `app`: the app the caller may see, whose batches only are found; None (said
    on purpose, never by default) where any app's batch may be shown: the vendor's status call, whose
    unguessable batch id is its only credential (spec), and the admin token."""
    repo = SwrveRepository(session)
    batch = await repo.batch(batch_id) if batch_id else None
    if batch is None or (app is not None and batch.app_id != app.id):
        raise errors.InvalidBatchId()
    body: dict[str, Any] = {"batch_id": batch.id}
    if batch.status != BatchStatus.PROCESSED:
        return {
            **body,
            "status": "in_progress",
            "retry_possible": False,
            **_counts(0, 0, [], []),
            "warnings": [],
            "failures": [],
        }
    reports = await repo.reports(batch.id)
    warnings = [_entry(r.user, r.reason, r.safe_to_resend) for r in reports if r.kind == "warning"]
    failures = [_entry(r.user, r.reason, r.safe_to_resend) for r in reports if r.kind == "failure"]
    if batch.sent_users is not None:  # frozen: the ledger's warnings are among the reports now
        outcome = LedgerOutcome(batch.sent_users, [], pending=False)
    elif batch.campaign_id is not None:
        outcome = ledger_outcome(await repo.ledger(batch.campaign_id))
    else:
        outcome = LedgerOutcome(0, [], pending=False)
    warnings += outcome.warnings
    pending = outcome.pending
    state = _state(pending, outcome.sent_users, warnings, failures)
    entries = warnings + failures
    retry_possible = bool(entries) and all(e["safe_to_resend"] for e in entries) and not pending
    return {
        **body,
        "status": state,
        "retry_possible": retry_possible,
        **_counts(batch.total_users, outcome.sent_users, warnings, failures),
        "warnings": warnings,
        "failures": failures,
    }


@dataclass(frozen=True)
class LedgerOutcome:
    """What a batch's ledger rows say: users reached, a warning per user reached on no device."""

    sent_users: int
    warnings: list[dict[str, Any]]
    pending: bool


def ledger_outcome(
    ledger: Sequence[tuple[DeliveryStatus, str | None, dict[str, Any] | None]],
) -> LedgerOutcome:
    sent_users: set[str] = set()
    unsent: dict[str, tuple[str, bool]] = {}
    pending = False
    for row_status, last_error, params in ledger:
        user = str((params or {}).get("user"))
        if row_status == DeliveryStatus.SENT:
            sent_users.add(user)
        elif row_status == DeliveryStatus.PENDING:
            pending = True
        else:
            unsent.setdefault(user, _delivery_reason(row_status, last_error))
    warnings = [_entry(user, *unsent[user]) for user in unsent if user not in sent_users]
    return LedgerOutcome(len(sent_users), warnings, pending)


async def fold_batch_ledger(session: AsyncSession, horizon: datetime, now: datetime) -> int:
    """Ledger retention for one batch: freeze its report, then fold all its campaign's rows.

    One transaction, bounded by the batch (a 256 KB body): the per-user warnings the rows gave go
    into the batch's reports and the users reached into `sent_users`, so its status reads the same
    afterwards. Returns the rows folded (0 when no batch is due, or another worker took it).
    """
    repo = SwrveRepository(session)
    found = await repo.foldable_batch(horizon)
    if found is None or not await repo.claim_freeze(found[0]):
        return 0
    batch_id, campaign_id = found
    outcome = ledger_outcome(await repo.ledger(campaign_id))
    await repo.freeze_report(batch_id, outcome.sent_users, outcome.warnings)
    return sum((await LedgerRepository(session).fold(campaign_id, horizon, now)).values())


def _state(pending: bool, sent: int, warnings: list[dict[str, Any]], failures: list[dict[str, Any]]) -> str:
    if pending:
        return "in_progress"
    if not warnings and not failures:
        return "done"
    if sent == 0:
        return "failed"
    return "done_with_warnings"


def _counts(total: int, sent: int, warnings: list[Any], failures: list[Any]) -> dict[str, dict[str, int]]:
    # Nested: "warnings" and "failures" at the top level are the lists themselves.
    return {"counts": {"total": total, "sent": sent, "warnings": len(warnings), "failures": len(failures)}}


async def counters(session: AsyncSession, push_campaign_id: int, *, app: App | None) -> dict[str, Any]:
    """Delivery and engagement counters of one Push API campaign, over all its batches; another app's
    campaign than `app` is unknown (None, said on purpose: any app's, for the admin token)."""
    repo = SwrveRepository(session)
    push = await repo.push_campaign(push_campaign_id)
    if push is None or (app is not None and push.app_id != app.id):
        raise errors.NotFound(f"There is no Push API campaign {push_campaign_id}", field="campaign_id")
    by_status, by_event, batches = await repo.campaign_counters(push.id)
    return {
        "campaign_id": push.id,
        "name": push.name,
        "platform": push.platform,
        "batches": batches,
        # A batch is transactional, never frequency-capped: its counters keep their shape.
        "delivery": {s.value: by_status.get(s, 0) for s in DeliveryStatus if s != DeliveryStatus.CAPPED},
        "engagement": {key: by_event.get(key, 0) for key in ("received", "clicked", "closed")},
    }

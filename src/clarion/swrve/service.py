"""Rules of the Swrve-compatible Batch Push API: accepting, processing and reporting batches."""

from __future__ import annotations

import json
import math
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.app_tenant import credentials
from clarion.app_tenant import service as apps
from clarion.app_tenant.repository import AppRepository
from clarion.app_tenant.security import hash_secret
from clarion.db import as_utc, insert_ignore, utcnow
from clarion.delivery.repository import LedgerRepository
from clarion.models import App, Batch, Campaign, Delivery, PushCampaign
from clarion.swrve import params as rules
from clarion.swrve.parser import Parsed, UserEntry, parse
from clarion.swrve.repository import SwrveRepository
from clarion.validation import storable

PLATFORMS = ("all", "ios", "android", "adm", "wns", "web")
MAX_BATCH_BYTES = 256 * 1024  # spec: "The maximum supported batch size is 256 KB."
RATE_WINDOW_S = 60


# --- Push API campaigns -------------------------------------------------------------------------


async def create_push_campaign(
    session: AsyncSession, app_key: str, name: str, message: str | None, title: str | None, platform: str
) -> tuple[int, str]:
    app = await apps.by_key(session, app_key)
    if platform not in PLATFORMS:
        raise errors.InvalidField(f"platform must be one of {', '.join(PLATFORMS)}", field="platform")
    if not 1 <= len(name) <= 255:
        raise errors.InvalidField("name must be 1-255 characters", field="name")
    push_key = secrets.token_hex(16)
    campaign = PushCampaign(
        app_id=app.id,
        name=name,
        push_key_hash=hash_secret(push_key),
        message=message,
        title=title,
        platform=platform,
        created_at=utcnow(),
    )
    await SwrveRepository(session).add(campaign)
    return campaign.id, push_key


# --- Accepting a batch --------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    push_key: str | None
    identity_key: str | None
    body: bytes


async def _campaign_and_app(session: AsyncSession, submission: Submission) -> tuple[PushCampaign, App]:
    repo = SwrveRepository(session)
    campaign = None
    if submission.push_key:
        campaign = await repo.push_campaign_by_key_hash(hash_secret(submission.push_key))
    if campaign is None:
        raise errors.InvalidPushKey()
    app = await AppRepository(session).by_id(campaign.app_id)
    assert app is not None, "a push campaign is deleted with its app"
    if submission.identity_key is not None:
        owner = await AppRepository(session).by_identity_hash(hash_secret(submission.identity_key))
        if owner is None:
            raise errors.InvalidIdentityKey()
        if owner.id != app.id:
            raise errors.IdentityKeyMismatch()
    if not app.batch_push:
        raise errors.FeatureNotAvailable()
    return campaign, app


async def _check_rate(session: AsyncSession, app: App, per_minute: int, now: datetime) -> None:
    recent = await SwrveRepository(session).batches_since(app.id, now - timedelta(seconds=RATE_WINDOW_S))
    if len(recent) >= per_minute:
        frees_at = recent[len(recent) - per_minute] + timedelta(seconds=RATE_WINDOW_S)
        retry_after = max(1, math.ceil((as_utc(frees_at) - now).total_seconds()))
        raise errors.RateLimitExceeded(retry_after)


async def check_keys(session: AsyncSession, submission: Submission) -> tuple[PushCampaign, App]:
    """The key checks, run before the body is read: what they find is handed on to `submit`."""
    return await _campaign_and_app(session, submission)


async def submit(
    session: AsyncSession,
    submission: Submission,
    keys: tuple[PushCampaign, App],
    *,
    per_minute: int,
    time_limit_s: float,
) -> str:
    """Accept a batch whose keys `check_keys` found good, in the same session: not looked up again."""
    campaign, app = keys
    if len(submission.body) > MAX_BATCH_BYTES:
        raise errors.BatchTooLarge()
    now = utcnow()
    await AppRepository(session).lock(app.id)  # batches of one app are counted one at a time
    await _check_rate(session, app, per_minute, now)
    batch = Batch(
        id=str(uuid.uuid4()),
        app_id=app.id,
        push_campaign_id=campaign.id,
        status="accepted",
        body=_storable_body(submission.body),
        identity_key_given=submission.identity_key is not None,
        created_at=now,
        deadline_at=now + timedelta(seconds=time_limit_s),
    )
    await SwrveRepository(session).add(batch)
    return batch.id


def _storable_body(body: bytes) -> str:
    """The body as text either database takes, byte for byte recoverable by `_stored_body`.

    A body that is UTF-8 without NUL is kept as it is (a batch starts with '[' or '{'). Any other
    (not UTF-8, a NUL that PostgreSQL refuses in text, or one that starts with '"') is kept as a
    JSON string literal of its surrogate-escaped text, so that it is still parsed, and reported, later.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return json.dumps(body.decode("utf-8", errors="surrogateescape"))
    if "\x00" in text or text.startswith('"'):
        return json.dumps(text)
    return text


def _stored_body(stored: str) -> bytes:
    text = json.loads(stored) if stored.startswith('"') else stored
    return str(text).encode("utf-8", errors="surrogateescape")


# --- Processing a batch -------------------------------------------------------------------------


@dataclass
class Plan:
    """What processing a batch decided: ledger rows to add and the report entries."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    users: int = 0
    max_ttl_s: int = 0

    def warn(self, user: str | None, reason: str, safe: bool = True) -> None:
        self.reports.append({"user": user, "kind": "warning", "reason": reason, "safe_to_resend": safe})

    def fail(self, user: str | None, reason: str) -> None:
        self.reports.append({"user": user, "kind": "failure", "reason": reason, "safe_to_resend": True})


@dataclass(frozen=True)
class Target:
    user: str
    id_key: str  # swrve_user_id | external_user_id
    params: dict[str, Any]


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= rules.MAX_ID_CHARS and storable(value)


def _targets(entry: UserEntry, common: dict[str, Any], plan: Plan) -> list[Target]:
    """Ids and merged params of one users-list element; a malformed one is reported alone.

    Every id counts toward the batch's total, and a malformed element without a legible id as one.
    """
    value = {"swrve_user_id": entry.value} if isinstance(entry.value, str) else entry.value
    if not isinstance(value, dict):
        plan.users += 1
        plan.fail(None, f"Failure to parse request. user #{entry.index} must be an id or an object")
        return []
    id_key = "external_user_id" if "external_user_id" in value else "swrve_user_id"
    ids = value.get(id_key)
    id_list = ids if isinstance(ids, list) else [ids]
    if not id_list or not all(_valid_id(i) for i in id_list):
        plan.users += 1
        plan.fail(
            None,
            f"Failure to parse request. user #{entry.index}: '{id_key}' must be an id "
            f"(1-{rules.MAX_ID_CHARS} characters, no NUL) or an array of ids",
        )
        return []
    plan.users += len(id_list)
    try:
        merged = {**common, **rules.normalise(value)}
    except rules.ParamError as exc:
        for user in id_list:
            plan.fail(user, f"Failure to parse request. {exc}")
        return []
    return [Target(str(user), id_key, merged) for user in id_list]


@dataclass
class Lookup:
    """The users' active devices, and the external ids that map to no user at all."""

    devices: dict[tuple[str, str], list[tuple[int, str]]] = field(default_factory=dict)
    unmapped: set[str] = field(default_factory=set)


async def _lookup(session: AsyncSession, batch: Batch, targets: list[Target]) -> Lookup:
    repo = SwrveRepository(session)
    lookup = Lookup()
    for id_key in ("swrve_user_id", "external_user_id"):
        if id_key == "external_user_id" and not batch.identity_key_given:
            continue  # those users are reported without a lookup
        ids = sorted({t.user for t in targets if t.id_key == id_key})
        for user, subscriber_id, platform in await repo.devices(batch.app_id, id_key, ids):
            lookup.devices.setdefault((id_key, user), []).append((subscriber_id, platform))
        if id_key == "external_user_id":
            lookup.unmapped = set(ids) - await repo.known_users(batch.app_id, id_key, ids)
    return lookup


async def _plan(
    session: AsyncSession, batch: Batch, push: PushCampaign, parsed: Parsed, campaign_id: int
) -> Plan:
    plan = Plan()
    defaults = {"message": push.message, "notification_title": push.title}
    common_error = None
    try:
        common = {**{k: v for k, v in defaults.items() if v is not None}, **rules.normalise(parsed.common)}
    except rules.ParamError as exc:
        common, common_error = {}, f"Failure to parse request. {exc}"
    named = [t for entry in parsed.entries for t in _targets(entry, common, plan)]
    targets = _distinct(named)
    plan.users -= len(named) - len(targets)
    if parsed.broken is not None:
        plan.users += 1
    if common_error is not None:
        for target in targets:  # the common parameters are every user's: none can be sent
            plan.fail(target.user, common_error)
        targets = []
    lookup = await _lookup(session, batch, targets)
    creds = await credentials.for_app(session, batch.app_id)
    for target in targets:
        _plan_user(plan, batch, push, target, lookup, creds, campaign_id)
    if parsed.broken is not None:
        plan.fail(parsed.broken.user, f"Parsing impossible. {parsed.broken.detail}")
    return plan


def _distinct(targets: list[Target]) -> list[Target]:
    """A user named twice is sent one notification, with the parameters of the first mention."""
    seen: set[tuple[str, str]] = set()
    kept: list[Target] = []
    for target in targets:
        if (target.id_key, target.user) not in seen:
            seen.add((target.id_key, target.user))
            kept.append(target)
    return kept


def _refusal(batch: Batch, target: Target, lookup: Lookup) -> str | None:
    """Why this user cannot be sent to at all (a failure), before any parameter check."""
    if target.id_key != "external_user_id":
        return None
    if not batch.identity_key_given:
        return "Attempted to send batch push using external ids, but no identity key provided"
    if target.user in lookup.unmapped:
        return f"No user mapping found for external user id '{target.user}'"
    return None


def _plan_user(
    plan: Plan,
    batch: Batch,
    push: PushCampaign,
    target: Target,
    lookup: Lookup,
    creds: dict[str, dict[str, Any]],
    campaign_id: int,
) -> None:
    refusal = _refusal(batch, target, lookup)
    if refusal is not None:
        plan.fail(target.user, refusal)
        return
    now = utcnow()
    if as_utc(batch.deadline_at) < now:
        late_ms = int((now - as_utc(batch.deadline_at)).total_seconds() * 1000)
        plan.warn(target.user, f"Exceeded time limit by {late_ms} ms")
        return
    warnings = rules.user_warnings(target.params)
    for warning in warnings:
        plan.warn(target.user, warning.reason, warning.safe_to_resend)
    devices = [
        (sid, platform)
        for sid, platform in lookup.devices.get((target.id_key, target.user), [])
        if push.platform in ("all", platform)
    ]
    if warnings:
        return
    if not devices:
        suffix = f" {push.platform}" if push.platform == "all" else ""
        plan.warn(target.user, f"No Push Token Registered For User{suffix}")
        return
    message = rules.message_fields(campaign_id, target.params)
    plan.max_ttl_s = max(plan.max_ttl_s, int(message["ttl_s"]))
    for subscriber_id, platform in devices:
        problem = rules.platform_warning(target.params, platform)
        provider = credentials.PROVIDER_FOR_PLATFORM.get(platform)
        if problem is None and provider is not None and provider not in creds:
            problem = rules.Warning_("Failed to retrieve push certificate for app")
        if problem is not None:
            plan.warn(target.user, problem.reason, problem.safe_to_resend)
            continue
        plan.rows.append(
            {"subscriber_id": subscriber_id, "params": {"user": target.user, "message": message}}
        )


async def process(session: AsyncSession, batch: Batch, queued_until: datetime) -> tuple[int, list[int]]:
    """Turn an accepted batch into a campaign and its ledger rows, in one transaction.

    Returns the campaign id and the ids of the ledger rows to queue. Re-running it after a crash
    finds the same campaign and rows (inserts are idempotent) and rewrites the same reports.
    """
    push = await session.get(PushCampaign, batch.push_campaign_id)
    assert push is not None, "a batch is deleted with its Push API campaign"
    now = utcnow()
    campaign = await session.get(Campaign, batch.campaign_id) if batch.campaign_id else None
    if campaign is None:
        campaign = Campaign(
            app_id=batch.app_id,
            status="sending",
            send_at=now,
            ttl_s=rules.DEFAULT_TTL_S,
            display_time_s=0,
            push_tag=None,
            is_transactional=True,
            urgency="normal",
            payload={
                "title": push.title or "",
                "message": push.message or "",
                "redirect_url": "",
                "buttons": [],
            },
            audience={"kind": "batch", "batch_id": batch.id},
            created_at=now,
            fanout_done=False,
            started_at=now,
            push_campaign_id=push.id,
        )
        session.add(campaign)
        await session.flush()
        batch.campaign_id = campaign.id
    plan = await _plan(session, batch, push, parse(_stored_body(batch.body)), campaign.id)
    rows = [
        {
            "campaign_id": campaign.id,
            "subscriber_id": row["subscriber_id"],
            "status": "pending",
            "attempts": 0,
            "owner": None,
            "lease_until": queued_until,
            "next_attempt_at": now,
            "updated_at": now,
            "params": row["params"],
        }
        for row in plan.rows
    ]
    for start in range(0, len(rows), 500):
        await insert_ignore(session, Delivery.__table__, rows[start : start + 500])
    await SwrveRepository(session).replace_reports(batch.id, plan.reports)
    campaign.ttl_s = plan.max_ttl_s or rules.DEFAULT_TTL_S
    campaign.fanout_done = True
    batch.total_users = plan.users
    batch.status = "processed"
    pending = await LedgerRepository(session).pending_ids(campaign.id)
    if not pending:
        await LedgerRepository(session).complete_if_done(campaign.id, now)
    return campaign.id, pending


# Processing attempts before a batch that keeps failing is given up.
MAX_PROCESS_ATTEMPTS = 3


async def give_up(session: AsyncSession, batch: Batch) -> None:
    """Processing failed every time: report it rather than leave the batch in progress forever."""
    batch.status = "processed"
    reason = "Internal failure to send a Push message"
    await SwrveRepository(session).replace_reports(
        batch.id, [{"user": None, "kind": "failure", "reason": reason, "safe_to_resend": True}]
    )


# --- Reporting ----------------------------------------------------------------------------------

# How a recipient's final ledger status reads in the report (spec, warning table; none safe to resend).
_OUTCOME_REASONS = {
    "gone": "Rejected, User Has Changed Token",
    "expired": "Failed to send a Push message",
    "failed": "Internal failure to send a Push message",
}


def _delivery_reason(status: str, last_error: str | None) -> str:
    if status == "rejected":
        return f"Failure due to: {last_error or 'the push service refused the message'}"
    return _OUTCOME_REASONS.get(status, "Failure to send message")


def _entry(user: str | None, reason: str, safe: bool) -> dict[str, Any]:
    return {"user": user, "reason": reason, "safe_to_resend": safe}


async def status(session: AsyncSession, batch_id: str) -> dict[str, Any]:
    batch = await session.get(Batch, batch_id) if batch_id else None
    if batch is None:
        raise errors.InvalidBatchId()
    body: dict[str, Any] = {"batch_id": batch.id}
    if batch.status != "processed":
        return {
            **body,
            "status": "in_progress",
            "retry_possible": False,
            **_counts(0, 0, [], []),
            "warnings": [],
            "failures": [],
        }
    repo = SwrveRepository(session)
    reports = await repo.reports(batch.id)
    warnings = [_entry(r.user, r.reason, r.safe_to_resend) for r in reports if r.kind == "warning"]
    failures = [_entry(r.user, r.reason, r.safe_to_resend) for r in reports if r.kind == "failure"]
    sent_users: set[str] = set()
    unsent: dict[str, str] = {}
    pending = False
    ledger = await repo.ledger(batch.campaign_id) if batch.campaign_id is not None else []
    for row_status, last_error, params in ledger:
        user = str((params or {}).get("user"))
        if row_status == "sent":
            sent_users.add(user)
        elif row_status == "pending":
            pending = True
        else:
            unsent.setdefault(user, _delivery_reason(row_status, last_error))
    warnings += [_entry(user, reason, False) for user, reason in unsent.items() if user not in sent_users]
    state = _state(pending, len(sent_users), warnings, failures)
    entries = warnings + failures
    retry_possible = bool(entries) and all(e["safe_to_resend"] for e in entries) and not pending
    return {
        **body,
        "status": state,
        "retry_possible": retry_possible,
        **_counts(batch.total_users, len(sent_users), warnings, failures),
        "warnings": warnings,
        "failures": failures,
    }


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


async def counters(session: AsyncSession, push_campaign_id: int) -> dict[str, Any]:
    """Delivery and engagement counters of one Push API campaign, over all its batches."""
    push = await session.get(PushCampaign, push_campaign_id)
    if push is None:
        raise errors.NotFound(f"There is no Push API campaign {push_campaign_id}", field="campaign_id")
    by_status, by_event, batches = await SwrveRepository(session).campaign_counters(push.id)
    return {
        "campaign_id": push.id,
        "name": push.name,
        "platform": push.platform,
        "batches": batches,
        "delivery": {
            key: by_status.get(key, 0) for key in ("pending", "sent", "gone", "rejected", "expired", "failed")
        },
        "engagement": {key: by_event.get(key, 0) for key in ("received", "clicked", "closed")},
    }

"""Processing an accepted batch: its users checked and looked up, its ledger rows and report written.

Run as queue work (swrve/tasks.py), in one transaction per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion.app_tenant import credentials
from clarion.campaign.repository import CampaignRepository
from clarion.db import as_utc, utcnow
from clarion.delivery.repository import LedgerRepository
from clarion.models import Batch, PushCampaign
from clarion.swrve import params as rules
from clarion.swrve.accept import stored_body
from clarion.swrve.parser import Parsed, UserEntry, parse
from clarion.swrve.repository import SwrveRepository
from clarion.validation import storable


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
        plan.fail(None, f"Failure to parse request. {entry.where} must be an id or an object")
        return []
    id_key = "external_user_id" if "external_user_id" in value else "swrve_user_id"
    ids = value.get(id_key)
    id_list = ids if isinstance(ids, list) else [ids]
    if not id_list or not all(_valid_id(i) for i in id_list):
        plan.users += 1
        plan.fail(
            None,
            f"Failure to parse request. {entry.where}: '{id_key}' must be an id "
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
            problem = rules.PushWarning("Failed to retrieve push certificate for app")
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
    repo = SwrveRepository(session)
    campaigns = CampaignRepository(session)
    ledger = LedgerRepository(session)
    push = await repo.push_campaign(batch.push_campaign_id)
    assert push is not None, "a batch is deleted with its Push API campaign"
    now = utcnow()
    campaign = await campaigns.get(batch.app_id, batch.campaign_id) if batch.campaign_id else None
    if campaign is None:
        payload = {
            "title": push.title or "",
            "message": push.message or "",
            "redirect_url": "",
            "buttons": [],
        }
        campaign = await campaigns.add_for_batch(
            batch.app_id, push.id, batch.id, payload, ttl_s=rules.DEFAULT_TTL_S, now=now
        )
        await repo.link_campaign(batch.id, campaign.id)
    plan = await _plan(session, batch, push, parse(stored_body(batch.body)), campaign.id)
    recipients = [(row["subscriber_id"], row["params"]) for row in plan.rows]
    await ledger.add_rows(campaign.id, recipients, now, queued_until)
    await repo.replace_reports(batch.id, plan.reports)
    await campaigns.finish_batch_fanout(campaign.id, ttl_s=plan.max_ttl_s or rules.DEFAULT_TTL_S)
    await repo.mark_processed(batch.id, total_users=plan.users)
    pending = await ledger.pending_ids(campaign.id)
    if not pending:
        await ledger.complete_if_done(campaign.id, now)
    return campaign.id, pending


# Processing attempts before a batch that keeps failing is given up.
MAX_PROCESS_ATTEMPTS = 3


async def give_up(session: AsyncSession, batch: Batch) -> None:
    """Processing failed every time: report it rather than leave the batch in progress forever."""
    repo = SwrveRepository(session)
    await repo.mark_processed(batch.id)
    reason = "Internal failure to send a Push message"
    await repo.replace_reports(
        batch.id, [{"user": None, "kind": "failure", "reason": reason, "safe_to_resend": True}]
    )

"""Accepting a batch: the key checks, the size and rate limits, and the batch stored as it came.

Processing comes later, as queue work (swrve/tasks.py); the stored batch is the truth until then.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.app_tenant.repository import AppRepository
from clarion.app_tenant.security import hash_secret
from clarion.db import as_utc, utcnow
from clarion.models import App, Batch, BatchStatus, PushCampaign
from clarion.swrve.repository import SwrveRepository

MAX_BATCH_BYTES = 256 * 1024  # spec: "The maximum supported batch size is 256 KB."
RATE_WINDOW_S = 60


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
    queue_grace_s: float,
) -> str:
    """Store the batch; its processing job is queued once this transaction has committed.

    Until `queue_grace_s` has passed the batch is left to that job; after it, the sweep queues it again.
    """
    campaign, app = keys  # found by check_keys in this session: not looked up again
    if len(submission.body) > MAX_BATCH_BYTES:
        raise errors.BatchTooLarge()
    now = utcnow()
    await AppRepository(session).lock(app.id)  # batches of one app are counted one at a time
    await _check_rate(session, app, per_minute, now)
    batch = Batch(
        id=str(uuid.uuid4()),
        app_id=app.id,
        push_campaign_id=campaign.id,
        status=BatchStatus.ACCEPTED,
        body=storable_body(submission.body),
        identity_key_given=submission.identity_key is not None,
        created_at=now,
        deadline_at=now + timedelta(seconds=time_limit_s),
        lease_until=now + timedelta(seconds=queue_grace_s),
    )
    await SwrveRepository(session).add(batch)
    return batch.id


def storable_body(body: bytes) -> str:
    """The body as text either database takes, byte for byte recoverable by `stored_body`.

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


def stored_body(stored: str) -> bytes:
    text = json.loads(stored) if stored.startswith('"') else stored
    return str(text).encode("utf-8", errors="surrogateescape")

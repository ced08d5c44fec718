"""What happens after an attempt: a pure function of the outcome, the attempt count and the clock."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from clarion.models import DeliveryStatus
from clarion.provider.outcome import Delivered, Gone, Outcome, Rejected, Retry

# Past this many attempts a recipient is given up as failed even if its TTL would allow more.
MAX_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class Final:
    status: DeliveryStatus  # any but PENDING
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RetryAt:
    at: datetime
    reason: str


Decision = Final | RetryAt


def backoff_s(attempts: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential back-off with jitter: uniform between half the base delay and the exponential ceiling.

    The ceiling is min(max_s, base_s * 2^(attempts - 1)). Drawing over the whole window, as "full
    jitter" does, spreads a burst of retries out; the floor of base_s / 2 (unlike full jitter's 0)
    keeps a retry from coming straight back at a service that just refused. The floor never rises
    above the ceiling, so no delay exceeds max_s.
    """
    ceiling = min(max_s, base_s * 2 ** max(0, attempts - 1))
    return (rng or random).uniform(min(base_s / 2, ceiling), ceiling)


def decide(
    outcome: Outcome,
    *,
    attempts: int,
    now: datetime,
    expires_at: datetime,
    base_s: float,
    max_s: float,
    rng: random.Random | None = None,
) -> Decision:
    """The decision after attempt number `attempts` (counting this one) answered `outcome`.

    Delivered, Gone and Rejected are final whatever the count and the clock. A Retry is `failed` at
    MAX_ATTEMPTS; otherwise it is retried after backoff_s, or after Retry-After when that is longer,
    unless that time is at or past `expires_at`: then it is `expired`.
    """
    if isinstance(outcome, Delivered):
        return Final(DeliveryStatus.SENT)
    if isinstance(outcome, Gone):
        return Final(DeliveryStatus.GONE, outcome.reason)
    if isinstance(outcome, Rejected):
        return Final(DeliveryStatus.REJECTED, outcome.reason)
    assert isinstance(outcome, Retry)
    if attempts >= MAX_ATTEMPTS:
        return Final(DeliveryStatus.FAILED, outcome.reason)
    delay = backoff_s(attempts, base_s, max_s, rng)
    if outcome.after_s is not None:
        delay = max(delay, outcome.after_s)
    at = now + timedelta(seconds=delay)
    if at >= expires_at:
        return Final(DeliveryStatus.EXPIRED, outcome.reason)
    return RetryAt(at, outcome.reason)

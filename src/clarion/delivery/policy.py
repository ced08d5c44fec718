"""What happens after an attempt: a pure function of the outcome, the attempt count and the clock."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from clarion.models import DeliveryStatus
from clarion.provider.outcome import Delivered, Gone, Outcome, Rejected, Retry

# The TTL decides when a transient failure is given up (`expired`); this cap is only a backstop.
# 10,000: with the default back-off (at most 600 s, ≈ 300 s on average once capped) the longest TTL,
# 28 days, leaves room for ≈ 8,000 attempts, so the cap ends retries only when CLARION_RETRY_MAX_S
# is set far below its default. A cap of 10 used to give up recipients an hour's TTL could still
# reach (issue #19: 16 of 10,000 `failed` against a service answering 30 % 500 and 20 % 429).
MAX_ATTEMPTS = 10_000


# The spec's own words (swrve-batch-push-api.txt, warning table): the Swrve report shows it as it is.
TIME_LIMIT_REASON = "Exceeded time limit by {} ms"
MILLISECOND = timedelta(milliseconds=1)
# Retries the Deliverer decides before any request (Clarion's own backlog or setup, not the device's):
# a campaign that ends on one of them does not count against the device (docs/token-hygiene.md).
TTL_RAN_OUT = "the TTL ran out before the attempt"
TIME_LIMIT_RAN_OUT = "the time limit ran out before the attempt"
NOT_ATTEMPTED = frozenset({TTL_RAN_OUT, TIME_LIMIT_RAN_OUT})


def unreached(outcome: Outcome, decision: Final) -> bool:
    """Whether a final decision means the push service kept failing to take the message for this
    device until it was given up (`expired` at the TTL, or `failed` at the backstop): what the hygiene
    job counts in a row. Not a cancel, a batch's time limit, nor a retry decided before any request."""
    return (
        decision.status in (DeliveryStatus.EXPIRED, DeliveryStatus.FAILED)
        and isinstance(outcome, Retry)
        and decision.reason == outcome.reason
        and outcome.reason not in NOT_ATTEMPTED
        and not outcome.reason.startswith("no sender for platform")
    )


@dataclass(frozen=True, slots=True)
class Final:
    status: DeliveryStatus  # any but PENDING
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RetryAt:
    at: datetime
    reason: str


Decision = Final | RetryAt

# Most outcomes are this one: made once, not once per message.
SENT = Final(DeliveryStatus.SENT)


def backoff_s(attempts: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential back-off with jitter: uniform between half the base delay and the exponential ceiling.

    The ceiling is min(max_s, base_s * 2^(attempts - 1)). Drawing over the whole window, as "full
    jitter" does, spreads a burst of retries out; the floor of base_s / 2 (unlike full jitter's 0)
    keeps a retry from coming straight back at a service that just refused. The floor never rises
    above the ceiling, so no delay exceeds max_s.
    """
    # The exponent stops at 1023 (2.0 ** 1023 is the largest power of two a float holds): retries now
    # run to thousands of attempts, and an int 2 ** 9999 cannot even be turned into a float.
    ceiling = min(max_s, base_s * 2.0 ** min(max(0, attempts - 1), 1023))
    return (rng or random).uniform(min(base_s / 2, ceiling), ceiling)


def decide(
    outcome: Outcome,
    *,
    attempts: int,
    now: datetime,
    expires_at: datetime,
    give_up_at: datetime | None = None,
    base_s: float,
    max_s: float,
    rng: random.Random | None = None,
) -> Decision:
    """The decision after attempt number `attempts` (counting this one) answered `outcome`.

    Delivered, Gone and Rejected are final whatever the count and the clock. A Retry is retried after
    backoff_s, or after Retry-After when that is longer (never before it), for as long as the TTL
    runs: a retry due at or past `expires_at` is `expired` instead. Only the backstop MAX_ATTEMPTS,
    far above what a TTL allows with the default back-off, makes it `failed` first.

    `give_up_at` (a Swrve batch's execution time limit) ends retries earlier than the TTL: a retry
    due at or past it is `expired` with TIME_LIMIT_REASON, n being how far past the limit it is now,
    or, still before it, how far past it the next attempt could come.
    """
    if isinstance(outcome, Delivered):
        return SENT
    if isinstance(outcome, Gone):
        return Final(DeliveryStatus.GONE, outcome.reason)
    if isinstance(outcome, Rejected):
        return Final(DeliveryStatus.REJECTED, outcome.reason)
    assert isinstance(outcome, Retry)
    if attempts >= MAX_ATTEMPTS:
        return Final(DeliveryStatus.FAILED, outcome.reason)
    # The back-off runs from the attempt's start: a push service that held a request until it timed
    # out (it hangs) was already given that long, and a recipient retried only after a full back-off
    # on top of every timeout came out last, seconds after the service answered again (the chaos
    # suite's push-hang: 16 s). Retry-After counts from the answer, so it stays a whole floor.
    delay = max(0.0, backoff_s(attempts, base_s, max_s, rng) - outcome.waited_s)
    if outcome.after_s is not None:
        delay = max(delay, outcome.after_s)
    at = now + timedelta(seconds=delay)
    if give_up_at is not None and at >= give_up_at and give_up_at < expires_at:
        late = now - give_up_at if now >= give_up_at else at - give_up_at
        return Final(DeliveryStatus.EXPIRED, TIME_LIMIT_REASON.format(math.ceil(late / MILLISECOND)))
    if at >= expires_at:
        return Final(DeliveryStatus.EXPIRED, outcome.reason)
    return RetryAt(at, outcome.reason)

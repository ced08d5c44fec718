"""The retry policy on its own: every outcome against the TTL left and the attempt count.

`decide` is pure but for its random draw, so every test hands it its own random source: a seeded
`random.Random`, or `Pinned`, which answers each draw with one end of the window it was asked for, so
that the bounds themselves are what the assertions see.
"""

import random
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clarion.config import Settings
from clarion.delivery import policy
from clarion.provider.outcome import Delivered, Gone, Outcome, Rejected, Retry

BASE_S = 1.0
MAX_S = 600.0
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TTL_LEFT = NOW + timedelta(hours=1)  # far more than any back-off below
EXPIRED = (NOW, NOW - timedelta(hours=1))  # expires_at reached, and long past
# Past the 10 attempts that used to be the limit, far past, and the last below the backstop.
BELOW_MAX = (1, 2, 10, 11, 100, policy.MAX_ATTEMPTS - 1)
AT_OR_PAST_MAX = (policy.MAX_ATTEMPTS, policy.MAX_ATTEMPTS + 1)  # past: a lapsed lease was claimed again
TICK = timedelta(microseconds=1)  # what a timedelta rounds a float delay to


class Pinned(random.Random):
    """Answers uniform(a, b) with a (`low`) or b (`high`) and records each window asked for."""

    def __init__(self, end: Literal["low", "high"]) -> None:
        super().__init__(0)
        self.end = end
        self.windows: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.windows.append((a, b))
        return a if self.end == "low" else b


def decide(
    outcome: Outcome,
    *,
    attempts: int = 1,
    expires_at: datetime = TTL_LEFT,
    rng: random.Random,
    base_s: float = BASE_S,
    max_s: float = MAX_S,
    give_up_at: datetime | None = None,
) -> policy.Decision:
    return policy.decide(
        outcome,
        attempts=attempts,
        now=NOW,
        expires_at=expires_at,
        give_up_at=give_up_at,
        base_s=base_s,
        max_s=max_s,
        rng=rng,
    )


def final(decision: policy.Decision) -> tuple[str, str | None]:
    assert isinstance(decision, policy.Final), decision
    return (decision.status, decision.reason)


def retry_delay(decision: policy.Decision) -> timedelta:
    assert isinstance(decision, policy.RetryAt), decision
    return decision.at - NOW


def ceiling_s(attempts: int, base_s: float = BASE_S, max_s: float = MAX_S) -> float:
    # Exact, in fractions: 2 ** 9998 does not fit a float.
    return float(min(Fraction(max_s), Fraction(base_s) * 2 ** (attempts - 1)))


# --- final outcomes: never retried, whatever the count and the clock -----------------------------


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Delivered(201), ("sent", None)),
        (Delivered(200), ("sent", None)),
        (Gone("410 Gone"), ("gone", "410 Gone")),
        (Rejected("400 bad TTL"), ("rejected", "400 bad TTL")),
    ],
)
@pytest.mark.parametrize("attempts", BELOW_MAX + AT_OR_PAST_MAX)
@pytest.mark.parametrize("expires_at", [TTL_LEFT, *EXPIRED])
def test_delivered_gone_and_rejected_are_final(
    outcome: Outcome, expected: tuple[str, str | None], attempts: int, expires_at: datetime
) -> None:
    rng = Pinned("low")
    assert final(decide(outcome, attempts=attempts, expires_at=expires_at, rng=rng)) == expected
    assert rng.windows == []  # no back-off was even drawn


# --- Retry: the attempt count --------------------------------------------------------------------


@pytest.mark.parametrize("attempts", BELOW_MAX)
def test_the_ttl_not_an_attempt_count_ends_retries(attempts: int) -> None:
    """Issue #19: with an hour's TTL left, a recipient was `failed` after 10 attempts; now it is retried."""
    decision = decide(Retry("500 Internal Server Error"), attempts=attempts, rng=Pinned("high"))
    assert isinstance(decision, policy.RetryAt)
    assert decision.at < TTL_LEFT


def test_the_backstop_is_beyond_what_the_longest_ttl_allows_by_default() -> None:
    """MAX_ATTEMPTS (documented in policy.py) never decides before the TTL with the default back-off:
    once capped at 600 s, a delay averages (0.5 + 600) / 2 s, and the longest TTL is 28 days."""
    fields = Settings.model_fields
    base_s, max_s = fields["retry_base_s"].default, fields["retry_max_s"].default
    mean_delay_s = (base_s / 2 + max_s) / 2
    attempts_in_28_days = 28 * 24 * 3600 / mean_delay_s
    assert 1.2 * attempts_in_28_days <= policy.MAX_ATTEMPTS
    assert policy.MAX_ATTEMPTS >= 100 * 10  # "much larger" than the old cap of 10


@pytest.mark.parametrize("attempts", AT_OR_PAST_MAX)
@pytest.mark.parametrize("expires_at", [TTL_LEFT, *EXPIRED])
def test_a_retry_at_max_attempts_fails(attempts: int, expires_at: datetime) -> None:
    rng = Pinned("low")
    outcome = Retry("503 Service Unavailable", after_s=1.0)
    decision = decide(outcome, attempts=attempts, expires_at=expires_at, rng=rng)
    assert final(decision) == ("failed", "503 Service Unavailable")  # failed outranks expired
    assert rng.windows == []


def test_the_last_attempt_below_the_limit_is_still_retried() -> None:
    decision = decide(Retry("timeout"), attempts=policy.MAX_ATTEMPTS - 1, rng=random.Random(1))
    assert isinstance(decision, policy.RetryAt)
    assert decision.reason == "timeout"


# --- Retry: the back-off and its jitter ----------------------------------------------------------


@pytest.mark.parametrize("attempts", [*range(1, 16), 100, 1024, 1025, policy.MAX_ATTEMPTS - 1])
def test_the_back_off_window_doubles_from_half_the_base(attempts: int) -> None:
    low, high = Pinned("low"), Pinned("high")
    assert retry_delay(decide(Retry("429"), attempts=attempts, rng=low)) == timedelta(seconds=BASE_S / 2)
    assert retry_delay(decide(Retry("429"), attempts=attempts, rng=high)) == timedelta(
        seconds=ceiling_s(attempts)
    )
    assert low.windows == high.windows == [(BASE_S / 2, ceiling_s(attempts))]


@pytest.mark.parametrize(("attempts", "ceiling"), [(4, 8.0), (5, 10.0), (9, 10.0)])
def test_the_window_stops_growing_at_max_s(attempts: int, ceiling: float) -> None:
    rng = Pinned("high")
    decision = decide(Retry("500"), attempts=attempts, rng=rng, max_s=10.0)
    assert retry_delay(decision) == timedelta(seconds=ceiling)
    assert rng.windows == [(BASE_S / 2, ceiling)]


@pytest.mark.parametrize("max_s", [0.1, 0.25])
def test_a_max_below_half_the_base_still_caps_the_delay(max_s: float) -> None:
    for end in ("low", "high"):
        rng = Pinned(end)
        assert retry_delay(decide(Retry("500"), attempts=3, rng=rng, max_s=max_s)) == timedelta(seconds=max_s)
        assert rng.windows == [(max_s, max_s)]


def test_the_jitter_spreads_over_the_whole_window() -> None:
    """Seeded draws land anywhere from half the base to the ceiling: near both ends, never outside."""
    rng = random.Random(20260301)
    attempts = 7  # window [0.5 s, 64 s]
    delays = [retry_delay(decide(Retry("503"), attempts=attempts, rng=rng)) for _ in range(500)]
    low, high = timedelta(seconds=BASE_S / 2), timedelta(seconds=ceiling_s(attempts))
    assert all(low <= delay <= high for delay in delays)
    assert min(delays) < timedelta(seconds=4)  # well below half the ceiling: not "equal jitter"
    assert max(delays) > timedelta(seconds=60)
    assert len(set(delays)) > 450  # drawn, not fixed


def test_the_same_seed_gives_the_same_retry_times() -> None:
    first = [decide(Retry("503"), attempts=n, rng=random.Random(5)) for n in BELOW_MAX]
    again = [decide(Retry("503"), attempts=n, rng=random.Random(5)) for n in BELOW_MAX]
    other = [decide(Retry("503"), attempts=n, rng=random.Random(6)) for n in BELOW_MAX]
    assert first == again
    assert first != other


# --- A time limit (a Swrve batch's) before the TTL -------------------------------------------------


def test_a_retry_that_would_come_past_the_time_limit_expires_saying_by_how_much() -> None:
    limit = NOW + timedelta(seconds=2)
    decision = decide(Retry("429", after_s=5.0), give_up_at=limit, rng=Pinned("low"))
    assert final(decision) == ("expired", "Exceeded time limit by 3000 ms")
    decision = decide(Retry("429", after_s=1.0), give_up_at=limit, rng=Pinned("low"))
    assert retry_delay(decision) == timedelta(seconds=1)


def test_an_attempt_already_past_the_time_limit_says_how_far_past_it_is() -> None:
    limit = NOW - timedelta(milliseconds=1500)
    decision = decide(Retry("the time limit ran out"), give_up_at=limit, rng=Pinned("high"))
    assert final(decision) == ("expired", "Exceeded time limit by 1500 ms")


def test_a_ttl_ending_first_expires_as_the_ttl() -> None:
    ends, limit = NOW + timedelta(seconds=1), NOW + timedelta(seconds=2)
    decision = decide(Retry("503", after_s=5.0), expires_at=ends, give_up_at=limit, rng=Pinned("low"))
    assert final(decision) == ("expired", "503")


def test_the_time_limit_does_not_touch_final_outcomes() -> None:
    limit = NOW - timedelta(seconds=1)
    assert final(decide(Delivered(201), give_up_at=limit, rng=Pinned("low"))) == ("sent", None)
    assert final(decide(Gone("HTTP 410"), give_up_at=limit, rng=Pinned("low"))) == ("gone", "HTTP 410")


@settings(derandomize=True, max_examples=300)
@given(
    attempts=st.integers(1, policy.MAX_ATTEMPTS - 1),
    base_s=st.floats(0.01, 60),
    max_s=st.floats(0.01, 3600),
    seed=st.integers(0, 2**32),
)
def test_every_draw_lies_in_its_window(attempts: int, base_s: float, max_s: float, seed: int) -> None:
    ceiling = ceiling_s(attempts, base_s, max_s)
    delay = retry_delay(
        decide(Retry("503"), attempts=attempts, rng=random.Random(seed), base_s=base_s, max_s=max_s)
    )
    assert timedelta(seconds=min(base_s / 2, ceiling)) - TICK <= delay <= timedelta(seconds=ceiling) + TICK


def test_without_a_random_source_the_module_one_is_drawn_from() -> None:
    delays = {policy.backoff_s(4, BASE_S, MAX_S) for _ in range(50)}
    assert all(BASE_S / 2 <= delay <= ceiling_s(4) for delay in delays)
    assert len(delays) > 1


# --- Retry: Retry-After is a floor ---------------------------------------------------------------


@pytest.mark.parametrize("attempts", BELOW_MAX)
def test_a_longer_retry_after_is_honoured(attempts: int) -> None:
    after_s = ceiling_s(attempts) + 30  # above the whole window
    decision = decide(Retry("429", after_s=after_s), attempts=attempts, rng=Pinned("high"))
    assert retry_delay(decision) == timedelta(seconds=after_s)


@pytest.mark.parametrize("after_s", [0.0, 0.1, 0.5])
def test_a_shorter_retry_after_does_not_shorten_the_back_off(after_s: float) -> None:
    decision = decide(Retry("429", after_s=after_s), attempts=3, rng=Pinned("high"))
    assert retry_delay(decision) == timedelta(seconds=ceiling_s(3))


def test_retry_after_is_honoured_beyond_max_s() -> None:
    decision = decide(Retry("429", after_s=900.0), attempts=2, rng=Pinned("high"), max_s=60.0)
    assert retry_delay(decision) == timedelta(seconds=900)


@pytest.mark.parametrize(("waited_s", "delay_s"), [(0.0, 4.0), (1.5, 2.5), (4.0, 0.0), (8.0, 0.0)])
def test_the_time_an_attempt_waited_counts_toward_its_back_off(waited_s: float, delay_s: float) -> None:
    decision = decide(Retry("TimeoutError", waited_s=waited_s), attempts=3, rng=Pinned("high"))
    assert retry_delay(decision) == timedelta(seconds=delay_s)


def test_retry_after_counts_from_the_answer_however_long_the_attempt_took() -> None:
    decision = decide(Retry("429", after_s=2.0, waited_s=8.0), attempts=3, rng=Pinned("high"))
    assert retry_delay(decision) == timedelta(seconds=2)


def test_a_retry_keeps_its_reason() -> None:
    decision = decide(Retry("429 Too Many Requests", after_s=2.0), rng=random.Random(3))
    assert isinstance(decision, policy.RetryAt)
    assert decision.reason == "429 Too Many Requests"


# --- Retry: never past the TTL -------------------------------------------------------------------


@pytest.mark.parametrize("attempts", BELOW_MAX)
@pytest.mark.parametrize("expires_at", EXPIRED)
def test_a_retry_after_the_ttl_ran_out_expires(attempts: int, expires_at: datetime) -> None:
    decision = decide(Retry("503"), attempts=attempts, expires_at=expires_at, rng=Pinned("low"))
    assert final(decision) == ("expired", "503")


def test_a_retry_due_exactly_when_the_ttl_ends_expires() -> None:
    ends = NOW + timedelta(seconds=BASE_S / 2)
    assert final(decide(Retry("503"), expires_at=ends, rng=Pinned("low"))) == ("expired", "503")
    assert retry_delay(decide(Retry("503"), expires_at=ends + TICK, rng=Pinned("low"))) == timedelta(
        seconds=BASE_S / 2
    )


def test_a_back_off_that_would_outlive_the_ttl_expires() -> None:
    ends = NOW + timedelta(seconds=3)
    assert retry_delay(decide(Retry("503"), attempts=3, expires_at=ends, rng=Pinned("low"))) == timedelta(
        seconds=0.5
    )
    assert final(decide(Retry("503"), attempts=3, expires_at=ends, rng=Pinned("high"))) == ("expired", "503")


def test_a_retry_after_past_the_ttl_expires() -> None:
    ends = NOW + timedelta(seconds=60)
    decision = decide(Retry("429", after_s=120.0), expires_at=ends, rng=Pinned("low"))
    assert final(decision) == ("expired", "429")
    decision = decide(Retry("429", after_s=59.0), expires_at=ends, rng=Pinned("low"))
    assert retry_delay(decision) == timedelta(seconds=59)


@settings(derandomize=True, max_examples=300)
@given(
    attempts=st.integers(1, policy.MAX_ATTEMPTS - 1),
    ttl_s=st.floats(0, 1200),
    after_s=st.none() | st.floats(0, 1200),
    seed=st.integers(0, 2**32),
)
def test_no_retry_is_ever_due_at_or_past_the_ttl(
    attempts: int, ttl_s: float, after_s: float | None, seed: int
) -> None:
    expires_at = NOW + timedelta(seconds=ttl_s)
    decision = decide(
        Retry("503", after_s), attempts=attempts, expires_at=expires_at, rng=random.Random(seed)
    )
    if isinstance(decision, policy.RetryAt):
        assert decision.at < expires_at
        assert after_s is None or decision.at - NOW >= timedelta(seconds=after_s) - TICK
    else:
        assert final(decision) == ("expired", "503")
        # The same draw again: the retry it would have scheduled was indeed not before the TTL's end.
        drawn = random.Random(seed).uniform(BASE_S / 2, ceiling_s(attempts))
        assert NOW + timedelta(seconds=max(drawn, after_s or 0.0)) >= expires_at

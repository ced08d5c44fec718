"""A/B variants: a campaign's recipients split, deterministically, into up to four variants (each its own
content), an optional holdout that is sent nothing, and an optional rest that is sent the winner (by
click rate) after a given time. docs/ab-variants.md.

The split is decided in the database as the fan-out adds each page to the ledger (`bucket_sql`), so no
subscriber id passes through Python; `bucket` is the same function in Python (tests, documentation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clarion import errors

MAX_VARIANTS = 4
MIN_VARIANTS = 2
PERCENT = 100
# Knuth's multiplicative hash: subscriber ids are consecutive, and multiplying by 2^32 / golden ratio
# spreads consecutive ids evenly over the 32-bit ring, whose top part picks the percent bucket.
MULTIPLIER = 2_654_435_761
RING = 2**32


@dataclass(frozen=True, slots=True)
class AbTest:
    """A campaign's A/B test as created: the split, each variant's content (a campaign/schemas
    Content), and when the rest is sent the winner (seconds after the start; None: no rest)."""

    split: Split
    contents: tuple[Any, ...]
    winner_after_s: int | None = None


@dataclass(frozen=True, slots=True)
class Split:
    """The percents of the variants (1..n, in order), the holdout's, and whether a rest waits for the
    winner (the percent left over)."""

    percents: tuple[int, ...]
    holdout_percent: int = 0

    @property
    def rest_percent(self) -> int:
        return PERCENT - sum(self.percents) - self.holdout_percent

    def bounds(self) -> list[tuple[int, int]]:
        """(upper bucket bound, group) in order: variants 1..n, then the holdout (group 0)."""
        out, upper = [], 0
        for number, percent in enumerate(self.percents, start=1):
            upper += percent
            out.append((upper, number))
        if self.holdout_percent:
            out.append((upper + self.holdout_percent, 0))
        return out


def split_of(percents: Sequence[int] | None, holdout_percent: int | None) -> Split | None:
    """A stored campaign's split (campaigns.variants' percents), None for a campaign without variants."""
    return None if percents is None else Split(tuple(percents), holdout_percent or 0)


def salt(campaign_id: int) -> int:
    """Each campaign's own offset on the ring: a subscriber is not always in the first variant."""
    return (campaign_id * 40_503) % RING


def bucket(campaign_id: int, subscriber_id: int) -> int:
    """0..99: the recipient's percent bucket in this campaign (what `bucket_sql` computes)."""
    return ((subscriber_id * MULTIPLIER + salt(campaign_id)) % RING) * PERCENT // RING


def group(split: Split, campaign_id: int, subscriber_id: int, rest_group: int) -> int:
    """The recipient's group: a variant 1..n, 0 for the holdout, else `rest_group`."""
    at = bucket(campaign_id, subscriber_id)
    for upper, number in split.bounds():
        if at < upper:
            return number
    return rest_group


def parse(ab_test: Mapping[str, Any], ttl_s: int) -> tuple[Split, list[Mapping[str, Any]], int | None]:
    """An `ab_test` object's rules: 2-4 variants, each a percent (1-100) and a payload; the holdout's
    percent (0-99); `winner_after` (seconds, within the TTL) when some percent is left for the rest.

    Returns the split, the variants' payload bodies (each checked by the caller as a push body's
    payload) and the winner's delay."""
    variants = ab_test.get("variants")
    if not isinstance(variants, Sequence) or not MIN_VARIANTS <= len(variants) <= MAX_VARIANTS:
        raise _invalid("ab_test.variants", f"must be {MIN_VARIANTS} to {MAX_VARIANTS} variants")
    percents = tuple(
        _percent(v.get("percent") if isinstance(v, Mapping) else None, f"ab_test.variants[{i}].percent", 1)
        for i, v in enumerate(variants)
    )
    holdout = _percent(ab_test.get("holdout_percent", 0), "ab_test.holdout_percent", 0)
    split = Split(percents, holdout)
    if split.rest_percent < 0:
        raise _invalid("ab_test", "the variants' and the holdout's percents add up to more than 100")
    winner_after = ab_test.get("winner_after")
    if winner_after is None and split.rest_percent:
        raise _invalid("ab_test", "the percents must add up to 100, or winner_after must send the rest")
    if winner_after is not None:
        if split.rest_percent == 0:
            raise _invalid("ab_test.winner_after", "leaves nobody for the winner: the percents add up to 100")
        if type(winner_after) is not int or not 0 < winner_after < ttl_s:
            raise _invalid(
                "ab_test.winner_after", f"must be whole seconds, more than 0 and less than the ttl ({ttl_s})"
            )
    return split, [v for v in variants if isinstance(v, Mapping)], winner_after


def _percent(value: Any, field: str, low: int) -> int:
    if type(value) is not int or not low <= value <= PERCENT:
        raise _invalid(field, f"must be a whole percent from {low} to {PERCENT}")
    return value


def _invalid(field: str, why: str) -> errors.InvalidField:
    return errors.InvalidField(f"{field}: {why}", field=field)


def winner(rates: Mapping[int, tuple[int, int]]) -> int:
    """The variant with the highest click rate (clicked / sent); a tie goes to the lower number."""

    def rate(number: int) -> float:
        sent, clicked = rates[number]
        return clicked / sent if sent else 0.0

    return max(sorted(rates), key=lambda number: (rate(number), -number))


def funnel_rows(
    percents: Sequence[int],
    holdout_percent: int,
    rest: bool,
    ledger: Sequence[tuple[int | None, str, int]],
    events: Sequence[tuple[int | None, str, int]],
) -> list[dict[str, Any]]:
    """Each group's funnel: variants 1..n, then the holdout and the rest when the campaign has them.
    The rest's figures gather its rows before and after the winner was picked (REST_GROUP + k)."""
    names = {number: str(number) for number in range(1, len(percents) + 1)}
    groups: dict[str, dict[str, Any]] = {
        str(n): _empty(str(n), p) for n, p in zip(range(1, len(percents) + 1), percents, strict=True)
    }
    if holdout_percent:
        groups["holdout"] = _empty("holdout", holdout_percent)
    if rest:
        groups["rest"] = _empty("rest", PERCENT - sum(percents) - holdout_percent)

    def name_of(variant: int | None) -> str | None:
        if variant is None:
            return None
        if variant == 0:
            return "holdout"
        return "rest" if variant >= _REST else names.get(variant)

    for variant, status, n in ledger:
        row = groups.get(name_of(variant) or "")
        if row is not None:
            row["audience"] += n
            key = status if status in ("sent", "pending") else "failed"
            if variant != 0:
                row[key] += n
    for variant, kind, n in events:
        row = groups.get(name_of(variant) or "")
        if row is not None and kind in ("received", "clicked", "closed"):
            row[kind] += n
    for row in groups.values():
        row["click_rate"] = round(row["clicked"] / row["sent"], 4) if row["sent"] else 0.0
    return list(groups.values())


_REST = 10  # models.REST_GROUP (this module imports no table)


def _empty(group: str, percent: int) -> dict[str, Any]:
    return {
        "group": group,
        "percent": percent,
        "audience": 0,
        "pending": 0,
        "sent": 0,
        "failed": 0,
        "received": 0,
        "clicked": 0,
        "closed": 0,
    }

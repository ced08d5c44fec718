"""What a push service said about one message, as a value the delivery policy can act on."""

import email.utils
import math
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Delivered:
    status: int


@dataclass(frozen=True, slots=True)
class Retry:
    reason: str
    after_s: float | None = None  # from Retry-After when the service gave one
    # Seconds the attempt was out before this came back (a timeout: the whole request timeout). The
    # back-off counts from when the attempt was sent, so this much of it has already passed.
    waited_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Gone:
    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    # The push service refused the app's credentials themselves (a token endpoint's refusal, APNs'
    # InvalidProviderToken, Web Push's BadJwtToken): the credential is flagged as failing, once, and
    # the rest of the campaign's recipients on that provider are not sent to (docs/token-hygiene.md).
    credentials: bool = False


Outcome = Delivered | Retry | Gone | Rejected

# How a Rejected reason starts when the fault is the app's channel to the push service (its
# credentials, the service's URL), not the message or the token: every recipient there fails alike.
CHANNEL_PREFIX = "channel: "


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).

    Returns None when the header is absent or unparseable, and never a negative number: a date in the
    past means "now". `now` should be an aware UTC datetime; a naive one is taken as UTC.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (_as_utc(when) - _as_utc(now)).total_seconds())


def _as_utc(moment: datetime) -> datetime:
    # email.utils gives a naive datetime for "-0000" zones; RFC 5322 means UTC by that.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment

"""Abuse limits on the public subscriber API: token buckets per client address and per app.

Registration and engagement events need no secret, so anyone can call them in a loop. Each is limited per
client address (an IPv6 client by its /64, what one host is usually given) and per app. A bucket holds at
most a minute's worth of requests and refills at the per-minute rate; an empty bucket answers 429 with
Retry-After. The buckets live in the serving process, in a bounded table (the least recently used key is
dropped when it is full, and comes back with a full bucket): with N `clarion serve` processes each allows
the configured rate, so the whole deployment allows N times it (README, "Configuration").
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from clarion import errors
from clarion.config import Settings
from clarion.runtime import RuntimeDep

# An IPv6 host usually holds a whole /64 (RFC 6177): one prefix is one client.
IPV6_CLIENT_PREFIX = 64


class RateLimiter:
    """Token buckets by key: at most `per_minute` at once, refilled at `per_minute` a minute.

    `per_minute` 0 turns the limit off.
    """

    def __init__(self, per_minute: int, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60
        self.max_keys = max_keys
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """Take one request's token: 0 when allowed, else the seconds until a token is back."""
        if self.capacity <= 0:
            return 0.0
        now = self.clock()
        tokens, at = self.buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.refill_per_s)
        wait_s = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait_s = (1 - tokens) / self.refill_per_s
        self.buckets[key] = (tokens, now)  # at the end: the most recently used
        if len(self.buckets) > self.max_keys:
            self.buckets.popitem(last=False)
        return wait_s


@dataclass
class SubscriberLimits:
    register_per_ip: RateLimiter
    register_per_app: RateLimiter
    events_per_ip: RateLimiter
    events_per_app: RateLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> SubscriberLimits:
        keys = settings.subscriber_rate_limit_keys
        return cls(
            register_per_ip=RateLimiter(settings.subscriber_register_per_ip_per_minute, keys),
            register_per_app=RateLimiter(settings.subscriber_register_per_app_per_minute, keys),
            events_per_ip=RateLimiter(settings.subscriber_events_per_ip_per_minute, keys),
            events_per_app=RateLimiter(settings.subscriber_events_per_app_per_minute, keys),
        )


def check(limiter: RateLimiter, key: str) -> None:
    """RateLimitExceeded (429, Retry-After in whole seconds) when the key's bucket is empty."""
    wait_s = limiter.take(key)
    if wait_s > 0:
        raise errors.RateLimitExceeded(max(1, math.ceil(wait_s)))


def client_key(request: Request) -> str:
    """The client's address as a limit key (behind a proxy, uvicorn takes it from X-Forwarded-For when
    the proxy is trusted: FORWARDED_ALLOW_IPS, 127.0.0.1 by default)."""
    host = request.client.host if request.client is not None else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is the IPv4 client 192.0.2.1
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(address)


async def limits(request: Request, rt: RuntimeDep) -> SubscriberLimits:
    """The serving app's limits, made on first use from its settings (kept in the app's state, so each
    app built by create_app has its own)."""
    state = request.app.state
    found: SubscriberLimits | None = getattr(state, "subscriber_limits", None)
    if found is None:
        found = state.subscriber_limits = SubscriberLimits.from_settings(rt.settings)
    return found


LimitsDep = Annotated[SubscriberLimits, Depends(limits)]

"""The shared limiter: every worker process asks the same store, so a rate holds across all of them.

A rate is kept as the bucket's next free send time (a GCRA without burst): reserving `count` sends
`interval_s` apart moves it `count * interval_s` further and answers where it stood, the time of the
first of them. A hold (a push service answered 429 or 503 with Retry-After) is a time before which
none of an app's sends goes to that service.

Times are seconds since the epoch from the caller's clock (`Clock`), so tests can run the engine on a
faster clock; the processes of one deployment need synchronised clocks (NTP), as their leases do.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from clarion.db import Database
from clarion.pacing.repository import PacingRepository

# Keys expire this long after their time has passed (Redis): a campaign's bucket outlives no campaign.
EXPIRE_AFTER_S = 3600.0
HOLD = "hold:"


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Limiter(Protocol):
    async def reserve(self, key: str, count: int, interval_s: float, now: float) -> float:
        """Reserve `count` sends `interval_s` apart; the time of the first (never before `now`)."""

    async def hold(self, app_id: int, service: str, until: float) -> None:
        """No send of the app to `service` before `until` (the latest hold wins)."""

    async def holds(self, app_id: int, now: float) -> dict[str, float]:
        """The app's services on hold at `now`, with when each hold ends."""

    async def close(self) -> None: ...


def _hold_prefix(app_id: int) -> str:
    return f"{HOLD}{app_id}:"


class DatabaseLimiter:
    """The store of a single `clarion serve` on SQLite (or any deployment without Redis)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def reserve(self, key: str, count: int, interval_s: float, now: float) -> float:
        async with self.db.session() as session:
            return await PacingRepository(session).advance(key, now, count * interval_s)

    async def hold(self, app_id: int, service: str, until: float) -> None:
        async with self.db.session() as session:
            await PacingRepository(session).raise_to(_hold_prefix(app_id) + service, until)

    async def holds(self, app_id: int, now: float) -> dict[str, float]:
        async with self.db.session() as session:
            return await PacingRepository(session).after(_hold_prefix(app_id), now)

    async def close(self) -> None:
        return None


# One round trip each, atomic in Redis. Lua numbers become integers in replies, so times travel as
# strings (tostring keeps 14 significant digits: a tenth of a millisecond at today's epoch).
_RESERVE = """
local t = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
if t < now then t = now end
redis.call('SET', KEYS[1], tostring(t + tonumber(ARGV[2])), 'PX', ARGV[3])
return tostring(t)
"""
_HOLD = """
local t = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if t < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
PREFIX = "clarion:pacing:"


class RedisLimiter:
    """The store when Redis is the queue: every worker shares it without touching the database."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis: Any = redis.from_url(url, socket_connect_timeout=5.0, socket_timeout=5.0)
        self._reserve = self._redis.register_script(_RESERVE)
        self._hold = self._redis.register_script(_HOLD)

    async def reserve(self, key: str, count: int, interval_s: float, now: float) -> float:
        cost_s = count * interval_s
        expire_ms = int((cost_s + EXPIRE_AFTER_S) * 1000)
        start = await self._reserve(keys=[PREFIX + key], args=[repr(now), repr(cost_s), expire_ms])
        return float(start)

    async def hold(self, app_id: int, service: str, until: float) -> None:
        key = PREFIX + _hold_prefix(app_id)
        await self._hold(keys=[key], args=[service, repr(until), int(EXPIRE_AFTER_S * 1000)])

    async def holds(self, app_id: int, now: float) -> dict[str, float]:
        found = await self._redis.hgetall(PREFIX + _hold_prefix(app_id))
        held = {_text(service): float(until) for service, until in found.items()}
        return {service: until for service, until in held.items() if until > now}

    async def close(self) -> None:
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def connect(queue_url: str, db: Database) -> Limiter:
    """Redis when Redis is the queue (every worker already reaches it), else the database."""
    if queue_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisLimiter(queue_url)
    return DatabaseLimiter(db)

"""The shared limiter, on each store: reservations never overlap however many processes ask at once,
idle time earns no burst, and a hold lasts until the latest time asked for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from clarion.db import Database
from clarion.pacing.limiter import DatabaseLimiter, Limiter, RedisLimiter
from tests.support import REDIS_URL, require

NOW = 1_800_000_000.0  # seconds since the epoch, as a pacing clock gives them


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the limiters keep their state: a fresh database's URL (SQLite, PostgreSQL), or Redis's."""
    if request.param == "redis":
        require("redis")
        yield REDIS_URL
    elif request.param == "sqlite":
        yield request.getfixturevalue("sqlite_databases").fresh(tmp_path)
    else:
        databases = request.getfixturevalue("postgres_databases")
        url = databases.fresh()
        yield url
        databases.drop(url)


@pytest.fixture
async def limiters(store: str) -> AsyncIterator[tuple[Limiter, Limiter]]:
    """Two processes' limiters over one store."""
    if store != REDIS_URL:
        db = Database(store)
        yield DatabaseLimiter(db), DatabaseLimiter(db)
        await db.dispose()
        return
    client = redis.from_url(REDIS_URL)
    await client.flushdb()
    made = RedisLimiter(REDIS_URL), RedisLimiter(REDIS_URL)
    yield made
    for limiter in made:
        await limiter.close()
    await client.flushdb()
    await client.aclose()


async def test_reservations_follow_each_other_and_idle_time_earns_no_burst(
    limiters: tuple[Limiter, Limiter],
) -> None:
    one, other = limiters
    starts = [
        await one.reserve("campaign:1", 5, 1.0, NOW),
        await other.reserve("campaign:1", 5, 1.0, NOW + 1),
        await one.reserve("campaign:2", 3, 0.5, NOW + 2),  # another key: its own bucket
        await one.reserve("campaign:1", 1, 1.0, NOW + 3),
        await other.reserve("campaign:1", 2, 1.0, NOW + 100),  # long idle: from now, no credit
        await one.reserve("campaign:1", 1, 1.0, NOW + 100),
    ]
    assert starts == [NOW, NOW + 5, NOW + 2, NOW + 10, NOW + 100, NOW + 102]


async def test_two_processes_asking_at_once_never_get_the_same_turn(
    limiters: tuple[Limiter, Limiter],
) -> None:
    one, other = limiters
    asks = [(one if n % 2 else other).reserve("provider:android:7", 1, 0.25, NOW) for n in range(20)]
    starts = await asyncio.gather(*asks)
    assert sorted(starts) == [NOW + 0.25 * n for n in range(20)]


async def test_a_hold_lasts_until_the_latest_time_asked_and_only_for_its_app(
    limiters: tuple[Limiter, Limiter],
) -> None:
    one, other = limiters
    await one.hold(1, "https://push.example.net", NOW + 5)
    await other.hold(1, "https://push.example.net", NOW + 3)  # an earlier end does not shorten it
    await other.hold(1, "fcm", NOW + 2)
    assert await other.holds(1, NOW) == {"https://push.example.net": NOW + 5, "fcm": NOW + 2}
    assert await one.holds(1, NOW + 2.5) == {"https://push.example.net": NOW + 5}
    assert await one.holds(1, NOW + 6) == {}
    assert await one.holds(2, NOW) == {}

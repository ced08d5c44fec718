"""The Redis Streams backend: a job round trip with acknowledgement, and an entry that is no job."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from clarion.queue import Job
from clarion.queue.redis_streams import GROUP, STREAM, RedisQueue
from tests.support import REDIS_URL, require

pytestmark = pytest.mark.redis


@pytest.fixture
async def queue() -> AsyncIterator[RedisQueue]:
    require("redis")
    client = redis.from_url(REDIS_URL)
    await client.flushdb()
    q = RedisQueue(REDIS_URL, consumer="test", reclaim_after_s=60)
    try:
        yield q
    finally:
        await q.close()
        await client.flushdb()
        await client.aclose()


async def test_a_job_is_taken_once_and_gone_when_acknowledged(queue: RedisQueue) -> None:
    await queue.put(Job("deliver", "3", (5, 6)))
    taken = await queue.take(timeout_s=1)
    assert taken is not None
    assert taken.job == Job("deliver", "3", (5, 6))
    assert await queue.take(timeout_s=0.1) is None
    await queue.ack(taken)
    client = redis.from_url(REDIS_URL)
    try:
        assert await client.xlen(STREAM) == 0
    finally:
        await client.aclose()


async def test_an_entry_that_is_no_job_is_dropped_and_the_next_job_taken(queue: RedisQueue) -> None:
    client = redis.from_url(REDIS_URL)
    try:
        await queue.take(timeout_s=0.01)  # creates the group
        await client.xadd(STREAM, {"job": '{"c": 1, "d": [2]}'})  # an older version's job
        await queue.put(Job("deliver", "1", (2,)))
        assert await queue.take(timeout_s=1) is None
        taken = await queue.take(timeout_s=1)
        assert taken is not None
        assert taken.job == Job("deliver", "1", (2,))
        pending = await client.xpending(STREAM, GROUP)
        assert pending["pending"] == 1, "only the real job waits for its acknowledgement"
    finally:
        await client.aclose()

"""A Redis restarted without persistence: the queue says it is unhealthy while Redis is away, then
creates its stream and group again and counts the loss (so the ledger re-queues what was lost).

Each test runs its own redis-server on a free port (tests.support.PrivateRedis), never the shared one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from clarion.outage import QueueUnavailable
from clarion.queue import Job
from clarion.queue.redis_streams import RedisQueue
from tests.support import PrivateRedis


@pytest.fixture
async def queue(private_redis: PrivateRedis) -> AsyncIterator[RedisQueue]:
    q = RedisQueue(private_redis.url, consumer="test", reclaim_after_s=60)
    try:
        yield q
    finally:
        await q.close()


async def take_until_answered(queue: RedisQueue, timeout_s: float = 10) -> None:
    """Take (and drop) until Redis answers again; a refused connection is QueueUnavailable."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await queue.take(timeout_s=0.05)
            return
        except QueueUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_a_redis_restarted_empty_gets_its_group_back_and_the_loss_is_counted(
    private_redis: PrivateRedis, queue: RedisQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    assert await queue.take(timeout_s=0.01) is None  # creates the group: a fresh Redis
    assert queue.losses == 1
    await queue.put(Job("deliver", "1", (1,)))  # lost with the restart

    private_redis.kill()
    with pytest.raises(QueueUnavailable):
        await queue.take(timeout_s=0.05)
    with pytest.raises(QueueUnavailable):
        await queue.put(Job("deliver", "1", (2,)))
    assert not queue.healthy
    assert await queue.ping() is False

    private_redis.start()
    await take_until_answered(queue)  # NOGROUP: the group is created again, nothing is read
    assert queue.healthy
    assert await queue.ping() is True
    # The end of the outage counts one (jobs put meanwhile were not), the missing group another.
    assert queue.losses == 3
    await queue.put(Job("deliver", "2", (3,)))
    taken = await queue.take(timeout_s=1)
    assert taken is not None
    assert taken.job == Job("deliver", "2", (3,))
    await queue.ack(taken)
    assert await queue.take(timeout_s=0.05) is None, "the job put before the restart is gone"

    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1, messages
    assert messages.count("queue (Redis) back") == 1, messages
    assert sum("had no consumer group" in m for m in messages) == 2, messages


async def test_a_job_taken_before_the_restart_is_acknowledged_without_an_error(
    private_redis: PrivateRedis, queue: RedisQueue
) -> None:
    await queue.put(Job("deliver", "1", (1,)))
    taken = await queue.take(timeout_s=1)
    assert taken is not None
    private_redis.kill()
    private_redis.start()
    await take_until_answered(queue)
    await queue.ack(taken)  # the group it was taken from is gone: nothing left to acknowledge
    assert queue.healthy


async def test_a_job_put_while_the_group_was_missing_is_read_by_the_new_group(
    private_redis: PrivateRedis, queue: RedisQueue
) -> None:
    assert await queue.take(timeout_s=0.01) is None
    private_redis.kill()
    private_redis.start()
    other = RedisQueue(private_redis.url, consumer="api", reclaim_after_s=60)
    try:
        await other.put(Job("deliver", "5", (9,)))  # XADD makes a bare stream, without the group
    finally:
        await other.close()
    await take_until_answered(queue)
    taken = await queue.take(timeout_s=1)
    assert taken is not None
    assert taken.job == Job("deliver", "5", (9,))

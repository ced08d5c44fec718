"""Redis Streams backend: a consumer group with acknowledgement, and XAUTOCLAIM for dead consumers.

Chosen over a task library (arq, rq, celery) because the engine needs exactly three properties and
Streams give all three natively: at-least-once delivery to one consumer of a group, an explicit ack,
and taking over what a consumer held once it has been idle too long (a SIGKILLed worker).

Redis is a cache of work; the database is the truth. A Redis restarted without persistence comes back
without the stream and its group: the first consumer that finds the group missing (NOGROUP) creates it
again and counts a loss (`losses`), and the runner then has the features queue again, from the
database, whatever the lost stream held. The end of any outage counts one too: work whose job could not
be put meanwhile (a sweep's, a fan-out's) is in the database, marked queued, and would otherwise wait
out the queue grace. Every error that means "Redis cannot be reached" is raised as `QueueUnavailable`,
and the outage is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import redis.asyncio as redis

from clarion.outage import QUEUE, Availability, QueueUnavailable
from clarion.queue import Job, Taken

log = logging.getLogger("clarion.queue")

STREAM = "clarion:jobs"
GROUP = "clarion-workers"
# A health check waits this long for Redis at most (a black-holed Redis must not hang /readyz).
PING_TIMEOUT_S = 1.0
# Reads and writes that do not answer within this long fail (a blocking read waits TAKE's timeout more).
SOCKET_TIMEOUT_S = 5.0

T = TypeVar("T")


class RedisQueue:
    durable = True

    def __init__(self, url: str, *, consumer: str, reclaim_after_s: float) -> None:
        self._redis: Any = redis.from_url(
            url,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            health_check_interval=30,
        )
        self._consumer = consumer
        self._reclaim_ms = int(reclaim_after_s * 1000)
        self._group_ready = False
        self._availability = Availability(f"{QUEUE} (Redis)")
        self.losses = 0

    @property
    def healthy(self) -> bool:
        return self._availability.up

    async def _call(self, command: Awaitable[T]) -> T:
        """One Redis command; "cannot reach Redis" becomes QueueUnavailable, and is logged once."""
        try:
            answer = await command
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._availability.failed(exc)
            # The pool's idle connections went with the server: dropped now, so that none of them
            # fails once more after its return (an outage that would seem to start again).
            await self._redis.connection_pool.disconnect(inuse_connections=False)
            raise QueueUnavailable(f"Redis unreachable: {exc}") from exc
        if self._availability.answered():
            self.losses += 1  # jobs put during the outage were not
        return answer

    async def _ensure_group(self) -> None:
        """Create the stream and its group if they are missing; count a loss when they were.

        Created from id 0, so jobs put while the group was missing (XADD creates a bare stream) are read.
        Several consumers may race: the one whose XGROUP CREATE succeeds counts the loss, the others get
        BUSYGROUP. A fresh Redis counts one too: re-queuing from an empty ledger costs nothing, and
        after a Redis lost while every worker was down it is what brings the work back.
        """
        if self._group_ready:
            return
        try:
            await self._call(self._redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True))
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        else:
            self.losses += 1
            log.warning(
                "queue stream %s had no consumer group %s (a new or restarted Redis): created it; "
                "what it held is queued again from the database",
                STREAM,
                GROUP,
            )
        self._group_ready = True

    async def _in_group(self, command: Awaitable[T]) -> T:
        """A group command; NOGROUP (the stream or group vanished with a Redis restart) recreates it."""
        try:
            return await self._call(command)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._group_ready = False
            await self._ensure_group()
            raise _GroupRecreated from exc

    async def put(self, job: Job) -> None:
        await self._call(self._redis.xadd(STREAM, {"job": job.encode()}))

    async def take(self, timeout_s: float) -> Taken | None:
        await self._ensure_group()
        try:
            return await self._take(timeout_s)
        except _GroupRecreated:
            return None  # nothing was read; the next take reads the new group

    async def _take(self, timeout_s: float) -> Taken | None:
        reclaimed = await self._reclaim()
        if reclaimed is not None:
            return reclaimed
        answer = await self._in_group(
            self._redis.xreadgroup(
                GROUP, self._consumer, {STREAM: ">"}, count=1, block=max(1, int(timeout_s * 1000))
            )
        )
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                return await self._accept(entry_id, fields)
        return None

    async def _reclaim(self) -> Taken | None:
        """A job another consumer took and has not acknowledged for too long: its worker is gone."""
        result = await self._in_group(
            self._redis.xautoclaim(
                STREAM, GROUP, self._consumer, min_idle_time=self._reclaim_ms, start_id="0-0", count=1
            )
        )
        entries = result[1] if result else []
        for entry_id, fields in entries:
            if fields:
                return await self._accept(entry_id, fields)
        return None

    async def _accept(self, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Taken | None:
        """The entry as a job; one that is not (left by another version) is dropped, not retried forever.

        Nothing is lost by dropping it: the database is the truth, and the sweeps queue its work again.
        """
        receipt = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        try:
            return Taken(Job.decode(fields[b"job"]), receipt)
        except (KeyError, ValueError, TypeError):
            log.warning("dropped queue entry %s: not a job %r", receipt, fields)
            await self._forget(receipt)
            return None

    async def ack(self, taken: Taken) -> None:
        await self._forget(taken.receipt)

    async def _forget(self, receipt: str) -> None:
        # On a stream lost since the job was taken, both answer 0: nothing is left to acknowledge.
        await self._call(self._redis.xack(STREAM, GROUP, receipt))
        await self._call(self._redis.xdel(STREAM, receipt))

    async def ping(self) -> bool:
        """Whether Redis answers within PING_TIMEOUT_S (the answer also updates `healthy`)."""
        try:
            return bool(await asyncio.wait_for(self._call(self._redis.ping()), PING_TIMEOUT_S))
        except (QueueUnavailable, TimeoutError, redis.RedisError) as exc:
            self._availability.failed(exc)
            return False

    async def close(self) -> None:
        await self._redis.aclose()


class _GroupRecreated(Exception):
    """A group command found the group missing; it is created again, and the command is not retried."""

"""Redis Streams backend: a consumer group with acknowledgement, and XAUTOCLAIM for dead consumers.

Chosen over a task library (arq, rq, celery) because the engine needs exactly three properties and
Streams give all three natively: at-least-once delivery to one consumer of a group, an explicit ack,
and taking over what a consumer held once it has been idle too long (a SIGKILLed worker).
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as redis

from clarion.queue import Job, Taken

log = logging.getLogger("clarion.queue")

STREAM = "clarion:jobs"
GROUP = "clarion-workers"


class RedisQueue:
    durable = True

    def __init__(self, url: str, *, consumer: str, reclaim_after_s: float) -> None:
        self._redis: Any = redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
        self._consumer = consumer
        self._reclaim_ms = int(reclaim_after_s * 1000)
        self._group_ready = False

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def put(self, job: Job) -> None:
        await self._redis.xadd(STREAM, {"job": job.encode()})

    async def take(self, timeout_s: float) -> Taken | None:
        await self._ensure_group()
        reclaimed = await self._reclaim()
        if reclaimed is not None:
            return reclaimed
        answer = await self._redis.xreadgroup(
            GROUP, self._consumer, {STREAM: ">"}, count=1, block=max(1, int(timeout_s * 1000))
        )
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                return await self._accept(entry_id, fields)
        return None

    async def _reclaim(self) -> Taken | None:
        """A job another consumer took and has not acknowledged for too long: its worker is gone."""
        result = await self._redis.xautoclaim(
            STREAM, GROUP, self._consumer, min_idle_time=self._reclaim_ms, start_id="0-0", count=1
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
            await self._redis.xack(STREAM, GROUP, receipt)
            await self._redis.xdel(STREAM, receipt)
            return None

    async def ack(self, taken: Taken) -> None:
        await self._redis.xack(STREAM, GROUP, taken.receipt)
        await self._redis.xdel(STREAM, taken.receipt)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (redis.RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()

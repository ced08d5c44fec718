"""One queue interface, two backends: in-process (memory://) and Redis Streams (redis://)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Job:
    """A chunk of one campaign's ledger rows to deliver. Jobs carry ids only and are idempotent."""

    campaign_id: int
    delivery_ids: tuple[int, ...]

    def encode(self) -> str:
        return json.dumps({"c": self.campaign_id, "d": list(self.delivery_ids)}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str | bytes) -> Job:
        data = json.loads(raw)
        return cls(int(data["c"]), tuple(int(i) for i in data["d"]))


@dataclass(frozen=True, slots=True)
class Taken:
    job: Job
    receipt: str  # the backend's handle for acknowledging this delivery of the job


class Queue(Protocol):
    # True when queued jobs outlive the process (so a restart must not re-queue what others hold).
    durable: bool

    async def put(self, job: Job) -> None: ...

    async def take(self, timeout_s: float) -> Taken | None: ...

    async def ack(self, taken: Taken) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryQueue:
    """The embedded default: an asyncio queue. Lost with the process; the ledger's leases recover it."""

    durable = False

    def __init__(self) -> None:
        self._jobs: asyncio.Queue[Job] = asyncio.Queue()

    async def put(self, job: Job) -> None:
        self._jobs.put_nowait(job)

    async def take(self, timeout_s: float) -> Taken | None:
        try:
            job = await asyncio.wait_for(self._jobs.get(), timeout_s)
        except TimeoutError:
            return None
        return Taken(job, "")

    async def ack(self, taken: Taken) -> None:
        self._jobs.task_done()

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def connect(url: str, *, consumer: str, reclaim_after_s: float) -> Queue:
    if url.startswith("memory:"):
        return MemoryQueue()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from clarion.worker.redis_queue import RedisQueue

        return RedisQueue(url, consumer=consumer, reclaim_after_s=reclaim_after_s)
    raise ValueError(f"CLARION_QUEUE_URL: unsupported queue {url!r} (memory:// or redis://)")

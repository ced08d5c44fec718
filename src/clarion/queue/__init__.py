"""The job queue, below every feature and the worker: one interface, two backends.

In-process (memory://) and Redis Streams (redis://). A job names the handler that runs it (its kind)
and carries ids only; the database is the truth, so a job run twice, or lost, does no harm.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Job:
    """Work for the handler registered for `kind`: ids only, and idempotent.

    `key` names the record the work is about (a campaign id, a batch id); `ids` are its rows, if any.
    """

    kind: str
    key: str
    ids: tuple[int, ...] = ()

    def encode(self) -> str:
        return json.dumps({"k": self.kind, "r": self.key, "d": list(self.ids)}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str | bytes) -> Job:
        data = json.loads(raw)
        return cls(str(data["k"]), str(data["r"]), tuple(int(i) for i in data["d"]))


@dataclass(frozen=True, slots=True)
class Taken:
    job: Job
    receipt: str  # the backend's handle for acknowledging this delivery of the job


class Queue(Protocol):
    # True when queued jobs outlive the process (so a restart must not re-queue what others hold).
    durable: bool
    # How many times this process found the queue's jobs lost (a Redis restarted empty): each time,
    # what the lost queue held is queued again from the database (Registry.on_queue_lost).
    losses: int

    @property
    def healthy(self) -> bool:
        """Whether the queue answered its last call (for health checks that must not wait)."""

    async def put(self, job: Job) -> None: ...

    async def take(self, timeout_s: float) -> Taken | None: ...

    async def ack(self, taken: Taken) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryQueue:
    """The embedded default: an asyncio queue. Lost with the process; the ledger's leases recover it."""

    durable = False
    losses = 0
    healthy = True

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
        from clarion.queue.redis_streams import RedisQueue

        return RedisQueue(url, consumer=consumer, reclaim_after_s=reclaim_after_s)
    raise ValueError(f"CLARION_QUEUE_URL: unsupported queue {url!r} (memory:// or redis://)")


Work = Callable[[], Awaitable[None]]
Handler = Callable[[Job], Awaitable[None]]


class Registry(Protocol):
    """Where a feature hands its background work; the worker's runner implements it.

    Features register here, so the runner runs what it is handed and knows no feature.
    """

    def every(self, name: str, work: Work, *, every_s: float = 0.0) -> None:
        """Run `work` on the scheduler's tick (0: every tick, which a wake-up call brings forward)."""

    def handle(self, kind: str, handler: Handler) -> None:
        """Run `handler` for every job of this kind a consumer takes."""

    def on_reset(self, hook: Work) -> None:
        """At start, when the queue is in-process: what the last process held is free again."""

    def on_queue_lost(self, hook: Work) -> None:
        """When the queue lost its jobs (Redis restarted empty): what was queued is free again."""

    def on_start(self, hook: Work) -> None: ...

    def on_stop(self, hook: Work) -> None:
        """After the last job has finished (close clients)."""

    def spawn(self, work: Coroutine[Any, Any, object], name: str) -> None:
        """Run `work` beside the scheduler; cancelled on stop, so it must resume from the database."""

"""The background runner of one process: periodic work, job consumers and a graceful stop.

It runs what the composition root hands it (clarion.composition) and imports no feature: each
feature registers its periodic work and its job handlers through `clarion.queue.Registry`.
`clarion serve` runs it beside the HTTP API (default in-process queue); `clarion worker` runs it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from clarion.queue import Handler, Queue, Taken, Work

log = logging.getLogger("clarion.runner")

# A consumer that fails a job waits this long before taking the next: a broken database is not hammered.
FAILED_JOB_PAUSE_S = 0.5
# How long a consumer waits for a job before looking whether it should stop.
TAKE_TIMEOUT_S = 0.5


@dataclass
class _Periodic:
    name: str
    work: Work
    every_s: float
    last_run: float = float("-inf")


class Runner:
    """Implements `clarion.queue.Registry`."""

    def __init__(self, queue: Queue, *, consumers: int, tick_s: float, wakeup: asyncio.Event) -> None:
        self.queue = queue
        self.consumers = consumers
        self.tick_s = tick_s
        self.wakeup = wakeup
        self._periodic: list[_Periodic] = []
        self._handlers: dict[str, Handler] = {}
        self._on_reset: list[Work] = []
        self._on_start: list[Work] = []
        self._on_stop: list[Work] = []
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[object]] = set()
        # Consumers waiting for a job (not holding one): safe to cancel at once on stop.
        self._idle: set[asyncio.Task[Any] | None] = set()

    def every(self, name: str, work: Work, *, every_s: float = 0.0) -> None:
        self._periodic.append(_Periodic(name, work, every_s))

    def handle(self, kind: str, handler: Handler) -> None:
        if kind in self._handlers:
            raise ValueError(f"two handlers for jobs of kind {kind!r}")
        self._handlers[kind] = handler

    def on_reset(self, hook: Work) -> None:
        self._on_reset.append(hook)

    def on_start(self, hook: Work) -> None:
        self._on_start.append(hook)

    def on_stop(self, hook: Work) -> None:
        self._on_stop.append(hook)

    def spawn(self, work: Coroutine[Any, Any, object], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def start(self) -> None:
        for hook in self._on_start:
            await hook()
        if not self.queue.durable:
            # The in-process queue died with the last process: whatever it held is free again.
            for hook in self._on_reset:
                await hook()
        self._tasks.append(asyncio.create_task(self._schedule(), name="scheduler"))
        for index in range(self.consumers):
            self._tasks.append(asyncio.create_task(self._consume(), name=f"consumer-{index}"))

    async def stop(self) -> None:
        """Stop taking work, let in-flight jobs finish (bounded by request timeouts), then close."""
        self._stopping.set()
        self.wakeup.set()
        for task in self._spawned:
            task.cancel()
        for waiting in self._idle:
            if waiting is not None:
                waiting.cancel()  # a job taken but not started is redelivered (lease / XAUTOCLAIM)
        await asyncio.gather(*self._tasks, *self._spawned, return_exceptions=True)
        self._tasks.clear()
        for hook in self._on_stop:
            await hook()

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            for periodic in self._periodic:
                if loop.time() - periodic.last_run < periodic.every_s:
                    continue
                periodic.last_run = loop.time()
                try:
                    await periodic.work()
                except Exception:
                    log.exception("periodic %s failed; it runs again next time", periodic.name)
            await self._sleep(self.tick_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), seconds)
        self.wakeup.clear()

    async def _take(self) -> Taken | None:
        me = asyncio.current_task()
        self._idle.add(me)
        try:
            return await self.queue.take(timeout_s=TAKE_TIMEOUT_S)
        finally:
            self._idle.discard(me)

    async def _consume(self) -> None:
        while not self._stopping.is_set():
            try:
                taken = await self._take()
                if taken is None:
                    continue
                handler = self._handlers.get(taken.job.kind)
                if handler is None:
                    # The database is the truth: a sweep re-queues whatever this job was about.
                    log.error("no handler for jobs of kind %r; dropped", taken.job.kind)
                else:
                    await handler(taken.job)
                await self.queue.ack(taken)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The job stays unacknowledged / its rows stay leased: it is retried after the lease.
                log.exception("a job failed")
                await asyncio.sleep(FAILED_JOB_PAUSE_S)

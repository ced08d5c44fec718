"""The background runner of one process: periodic work, job consumers and a graceful stop.

It runs what the composition root hands it (clarion.composition) and imports no feature: each
feature registers its periodic work and its job handlers through `clarion.queue.Registry`.
`clarion serve` runs it beside the HTTP API (default in-process queue); `clarion worker` runs it alone.

Outages of the database or the queue are not failures of the work: a job that cannot reach either is
retried in place with back-off (not dropped, which would leave its rows waiting for the sweeper's grace
period), periodic work simply runs again next tick, and each outage is logged once when it starts and
once when it ends (clarion.outage). When the queue reports that it lost its jobs (a Redis restarted
empty), the `on_queue_lost` hooks free what was queued and the periodic work runs at once to queue it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from clarion import outage
from clarion.queue import Handler, Queue, Taken, Work

log = logging.getLogger("clarion.runner")

# A consumer that fails a job waits this long before taking the next: a broken database is not hammered.
FAILED_JOB_PAUSE_S = 0.5
# How long a consumer waits for a job before looking whether it should stop (a stop cancels a waiting
# consumer at once, so this only bounds how often an idle consumer asks the queue again).
TAKE_TIMEOUT_S = 2.0


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
        self._on_queue_lost: list[Work] = []
        self._losses_seen = 0
        self._database = outage.Availability(outage.DATABASE)
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

    def on_queue_lost(self, hook: Work) -> None:
        self._on_queue_lost.append(hook)

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
            await self._after_queue_loss()
            for periodic in self._periodic:
                if loop.time() - periodic.last_run < periodic.every_s:
                    continue
                periodic.last_run = loop.time()
                await self._attempt(periodic.work, f"periodic {periodic.name} (it runs again next time)")
            await self._sleep(self.tick_s)

    async def _after_queue_loss(self) -> None:
        """The queue lost its jobs: free what was queued, and run the sweeps now to queue it again."""
        losses = self.queue.losses
        if losses == self._losses_seen:
            return
        for hook in self._on_queue_lost:
            if await self._attempt(hook, "re-queuing after the queue's loss") is not None:
                return  # the database is away too: tried again next tick
        self._losses_seen = losses
        log.warning("the queue's lost jobs are queued again from the database")
        for periodic in self._periodic:
            periodic.last_run = float("-inf")

    async def _attempt(self, work: Work, what: str) -> Exception | None:
        """Run `work` once; its failure, if any (an outage is logged once, any other failure in full)."""
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            dependency = outage.unreachable(exc)
            if dependency is None:
                log.exception("%s failed", what)
            elif dependency == outage.DATABASE:
                self._database.failed(exc)  # the queue logs its own outages
            return exc
        self._database.answered()
        return None

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
        delay = 0.0
        while not self._stopping.is_set():
            try:
                taken = await self._take()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if outage.unreachable(exc) is None:
                    log.exception("taking a job failed")
                # The queue logs its own outage; a consumer waits for it to come back.
                delay = outage.next_delay(delay)
                await self._pause(max(delay, FAILED_JOB_PAUSE_S))
                continue
            delay = 0.0
            if taken is not None:
                await self._run(taken)

    async def _run(self, taken: Taken) -> None:
        """Run a job until it is done, failed, or the runner stops; acknowledge it unless stopped.

        While the database or the queue cannot be reached, the job is retried here with back-off: it
        resumes within seconds of their return, instead of waiting for a sweep to queue its rows again.
        """
        handler = self._handlers.get(taken.job.kind)
        if handler is None:
            # The database is the truth: a sweep re-queues whatever this job was about.
            log.error("no handler for jobs of kind %r; dropped", taken.job.kind)
        else:
            delay = 0.0
            while (failure := await self._attempt(lambda: handler(taken.job), "a job")) is not None:
                if outage.unreachable(failure) is None:
                    # A bug, not an outage: the job stays unacknowledged / its rows stay leased, and
                    # the lease or XAUTOCLAIM brings it back later.
                    await self._pause(FAILED_JOB_PAUSE_S)
                    return
                if self._stopping.is_set():
                    return  # not acknowledged: redelivered (Redis) or reset at the next start
                delay = outage.next_delay(delay)
                await self._pause(delay)
        try:
            await self.queue.ack(taken)
        except Exception as exc:
            # Done, not acknowledged: the job runs again after XAUTOCLAIM and finds nothing left to do.
            if outage.unreachable(exc) is None:
                log.exception("acknowledging a job failed")

    async def _pause(self, seconds: float) -> None:
        """Sleep, or less when the runner stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

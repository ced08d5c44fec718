"""The process's sending lanes: a fixed number of long-lived tasks that carry out every job's sends.

Jobs prepare their messages (for Web Push, the encryption) and queue the requests here; as many
lanes as `CLARION_WORKER_CONCURRENCY` take them in order. A lane is busy from its request until the
outcome is recorded, so the lane count caps both the requests in flight and what a crash could send
twice, and nothing waits on a semaphore: with a semaphore in front of per-job lanes, four jobs' 256
lanes contending for 64 permits cost ≈ 10 % of the event loop (py-spy, delivery benchmark).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import Protocol

from clarion.provider.base import Transmit
from clarion.provider.outcome import Outcome, Retry

log = logging.getLogger("clarion.delivery")

# Distinct unexpected exception types logged with a traceback per process; later ones are counted only.
MAX_LOGGED_KINDS = 32


class Sink(Protocol):
    """Where a request's outcome goes once the lanes have it: its job (recorder.Job)."""

    def done(self, index: int, outcome: Outcome) -> Awaitable[None]:
        """Take the outcome; what it returns resolves once the outcome is recorded."""


class SendLanes:
    def __init__(self, size: int) -> None:
        self._size = size
        # Bounded: a job that prepares faster than the lanes send waits here, holding one window.
        self._queue: asyncio.Queue[tuple[Transmit, int, Sink]] = asyncio.Queue(size)
        self._tasks: list[asyncio.Task[None]] = []
        # Exception types already logged with their traceback: a fault that hits every recipient
        # is logged once, not once per message (the job summaries count the rest).
        self._logged: set[str] = set()

    async def submit(self, sink: Sink, window: Sequence[tuple[int, Transmit]]) -> None:
        """Queue a window of prepared requests; returns once all of them are queued."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._lane(), name=f"send-lane-{n}") for n in range(self._size)
            ]
        for index, transmit in window:
            await self._queue.put((transmit, index, sink))

    async def close(self) -> None:
        """Stop the lanes; the engine calls this after its jobs have finished."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _lane(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            transmit, index, sink = await self._queue.get()
            sent_at = loop.time()
            try:
                outcome = await transmit()
            except Exception as exc:
                # Providers turn what they expect into outcomes; anything else is one recipient's
                # problem, retried like a network error, not the end of the job's other sends.
                self._log_unexpected(exc)
                outcome = Retry(f"{type(exc).__name__}: {exc}")
            if isinstance(outcome, Retry):
                # The retry's back-off counts from here, when the attempt went out (policy.decide).
                outcome = replace(outcome, waited_s=loop.time() - sent_at)
            # The lane stays busy until its outcome is in the ledger: what was sent and is not yet
            # recorded, all a crash would send again, is at most one request per lane.
            await sink.done(index, outcome)

    def _log_unexpected(self, exc: Exception) -> None:
        kind = type(exc).__qualname__
        if kind in self._logged or len(self._logged) >= MAX_LOGGED_KINDS:
            return
        self._logged.add(kind)
        log.error("sending to one recipient failed unexpectedly (logged once per kind)", exc_info=exc)

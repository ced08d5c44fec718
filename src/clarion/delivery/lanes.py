"""The process's sending lanes: a fixed number of long-lived tasks that carry out every job's sends.

Jobs prepare their messages (for Web Push, the encryption) and queue the requests here; as many
lanes as `CLARION_WORKER_CONCURRENCY` take them in order. The lane count is the cap on requests in
flight, so nothing waits on a semaphore: with a semaphore in front of per-job lanes, four jobs' 256
lanes contending for 64 permits cost ≈ 10 % of the event loop (py-spy, delivery benchmark).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from clarion.provider.base import Transmit
from clarion.provider.outcome import Outcome, Retry

log = logging.getLogger("clarion.delivery")


class Sends:
    """One job's requests in the lanes: where their outcomes go, and how many are still out."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes
        self._left = 0
        self._all_done = asyncio.Event()
        self._all_done.set()

    def expect(self, count: int) -> None:
        if count:
            self._left += count
            self._all_done.clear()

    def done(self, index: int, outcome: Outcome) -> None:
        self.outcomes[index] = outcome
        self._left -= 1
        if self._left == 0:
            self._all_done.set()

    async def wait(self) -> None:
        await self._all_done.wait()


class SendLanes:
    def __init__(self, size: int) -> None:
        self._size = size
        # Bounded: a job that prepares faster than the lanes send waits here, holding one window.
        self._queue: asyncio.Queue[tuple[Transmit, int, Sends]] = asyncio.Queue(size)
        self._tasks: list[asyncio.Task[None]] = []

    async def submit(self, sends: Sends, window: Sequence[tuple[int, Transmit]]) -> None:
        """Queue a window of prepared requests; returns once all of them are queued."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._lane(), name=f"send-lane-{n}") for n in range(self._size)
            ]
        sends.expect(len(window))
        for index, transmit in window:
            await self._queue.put((transmit, index, sends))

    async def close(self) -> None:
        """Stop the lanes; the engine calls this after its jobs have finished."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _lane(self) -> None:
        while True:
            transmit, index, sends = await self._queue.get()
            try:
                outcome = await transmit()
            except Exception as exc:
                # Providers turn what they expect into outcomes; anything else is one recipient's
                # problem, retried like a network error, not the end of the job's other sends.
                log.exception("sending to one recipient failed unexpectedly")
                outcome = Retry(f"{type(exc).__name__}: {exc}")
            sends.done(index, outcome)

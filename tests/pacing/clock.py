"""A pacing clock that runs `speed` times faster than the wall clock, from the wall clock's now."""

from __future__ import annotations

import asyncio
import time


class FastClock:
    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.started = time.time()

    def time(self) -> float:
        return self.virtual(time.time())

    def virtual(self, wall: float) -> float:
        """A wall-clock time (the fake push service's stamps) on this clock."""
        return self.started + (wall - self.started) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)

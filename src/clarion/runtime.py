"""What a running server holds: settings, database, queue and the delivery engine's wake-up call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Request

from clarion.config import Settings
from clarion.db import Database
from clarion.queue import Queue


@dataclass
class Runtime:
    settings: Settings
    db: Database
    scheduler_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    queue: Queue | None = None

    def wake_scheduler(self) -> None:
        """A new campaign is due now: let an in-process scheduler look without waiting for its tick."""
        self.scheduler_wakeup.set()


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt

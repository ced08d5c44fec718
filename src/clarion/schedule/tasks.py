"""The recurring schedules' background work: each scheduler tick makes the campaigns of the occurrences
that have come (the campaign scheduler then starts them like any other)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from clarion import errors, metrics
from clarion.app_tenant.repository import AppRepository
from clarion.db import Database, utcnow
from clarion.queue import Registry
from clarion.schedule import service
from clarion.schedule.repository import ScheduleRepository

log = logging.getLogger("clarion.schedule")

# Occurrences started per tick: a scheduler that was down catches up a few at a time.
START_BATCH = 16

Clock = Callable[[], datetime]


class ScheduleTasks:
    def __init__(self, db: Database, clock: Clock = utcnow) -> None:
        self.db = db
        self.clock = clock

    async def start_due(self) -> int:
        """Make the campaign of each due occurrence, each schedule in its own transaction; how many."""
        now = self.clock()
        async with self.db.session() as session:
            due = [(s.id, s.app_id) for s in await ScheduleRepository(session).due(now, START_BATCH)]
        started = 0
        for schedule_id, app_id in due:
            started += await self._start(schedule_id, app_id)
        return started

    async def start_due_tick(self) -> None:
        await self.start_due()

    async def _start(self, schedule_id: int, app_id: int) -> int:
        try:
            async with self.db.session() as session:
                schedule = await ScheduleRepository(session).get(app_id, schedule_id)
                app = await AppRepository(session).by_id(app_id)
                if schedule is None or app is None:
                    return 0
                campaign = await service.start_occurrence(session, schedule, app)
        except errors.ClarionError as refused:
            # Its campaign can no longer be made (a tag it names was deleted): skip this occurrence.
            log.warning("schedule %s: an occurrence was skipped: %s", schedule_id, refused.message)
            async with self.db.session() as session:
                schedule = await ScheduleRepository(session).get(app_id, schedule_id)
                if schedule is not None:
                    await service.skip_occurrence(session, schedule)
            return 0
        if campaign is None:
            return 0  # another scheduler started it
        metrics.OCCURRENCES_STARTED.inc()
        log.info(
            "schedule %s: occurrence %s is campaign %s", schedule_id, campaign.occurrence_at, campaign.id
        )
        return 1


def register(registry: Registry, db: Database) -> ScheduleTasks:
    tasks = ScheduleTasks(db)
    registry.every("start recurring schedules' occurrences", tasks.start_due_tick)
    return tasks

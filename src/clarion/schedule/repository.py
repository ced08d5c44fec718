"""All SQL about recurring schedules (the `schedules` table, its only writer)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.models import Schedule, ScheduleStatus


class ScheduleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, schedule: Schedule) -> Schedule:
        self.session.add(schedule)
        await self.session.flush()
        return schedule

    async def get(self, app_id: int, schedule_id: int) -> Schedule | None:
        schedule = await self.session.get(Schedule, schedule_id)
        return schedule if schedule is not None and schedule.app_id == app_id else None

    async def page(self, app_id: int, after_id: int, limit: int) -> list[Schedule]:
        """The app's schedules in the order they were made, after `after_id`."""
        query = select(Schedule).where(Schedule.app_id == app_id, Schedule.id > after_id)
        return list((await self.session.scalars(query.order_by(Schedule.id).limit(limit))).all())

    async def due(self, now: datetime, limit: int) -> list[Schedule]:
        """Active schedules whose next occurrence has come."""
        query = (
            select(Schedule)
            .where(Schedule.status == ScheduleStatus.ACTIVE, Schedule.next_at <= now)
            .order_by(Schedule.next_at)
            .limit(limit)
        )
        return list((await self.session.scalars(query)).all())

    async def advance(self, schedule_id: int, occurrence: datetime, next_at: datetime | None) -> bool:
        """Claim `occurrence`: move next_at on from it, only if no other scheduler has (a conditional
        UPDATE: one of any number of racing schedulers wins). None: it was the last one."""
        result = await self.session.execute(
            update(Schedule)
            .where(
                Schedule.id == schedule_id,
                Schedule.status == ScheduleStatus.ACTIVE,
                Schedule.next_at == occurrence,
            )
            .values(
                next_at=next_at,
                occurrences=Schedule.occurrences + 1,
                status=ScheduleStatus.ACTIVE if next_at is not None else ScheduleStatus.ENDED,
            )
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    async def change(
        self, schedule: Schedule, allowed: tuple[str, ...], status: str, next_at: datetime | None
    ) -> bool:
        """Set the status (and the next occurrence) if the schedule is in one of `allowed` (a
        conditional UPDATE: it races safely with a scheduler starting an occurrence); the loaded
        `schedule` shows the row as it is then."""
        result = await self.session.execute(
            update(Schedule)
            .where(Schedule.id == schedule.id, Schedule.status.in_(allowed))
            .values(status=status, next_at=next_at)
            .execution_options(synchronize_session=False)
        )
        await self.session.refresh(schedule)
        return getattr(result, "rowcount", 0) == 1

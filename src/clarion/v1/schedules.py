"""/v1/apps/{app_key}/schedules: recurring campaigns (an RFC 5545 RRULE in a time zone), each
occurrence an ordinary campaign (`schedule_id` on /v1 campaigns); pause, resume, cancel. Rules live
in schedule/service.py."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from clarion.db import as_utc, utcnow
from clarion.models import Schedule
from clarion.runtime import SessionDep
from clarion.schedule import service
from clarion.v1.access import ScopedAppDep
from clarion.v1.body import Body
from clarion.v1.campaigns import CampaignIn
from clarion.v1.idempotency import OnceDep
from clarion.v1.listing import PageDep, paged
from clarion.v1.pagination import Page
from clarion.validation import PathId

router = APIRouter(prefix="/apps/{app_key}/schedules", tags=["Schedules"])


class ScheduleIn(Body):
    """When: `rrule` (one RFC 5545 RRULE line, FREQ HOURLY or slower) read in `timezone` from
    `starts_at` (DTSTART; without an offset, a wall-clock time in `timezone`; absent: now) until
    `ends_at` (or the rule's own COUNT/UNTIL). What: `campaign`, a /v1 campaign body (its `send_at` is
    each occurrence)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rrule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0",
                    "timezone": "Europe/Paris",
                    "campaign": {
                        "payload": {
                            "title": "This week",
                            "message": "Our picks",
                            "redirect_url": "https://example.com/week",
                        }
                    },
                }
            ]
        },
    )
    rrule: str = Field(max_length=1000)
    timezone: str = Field(max_length=64)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    campaign: CampaignIn

    def create(self) -> service.ScheduleCreate:
        campaign = self.campaign.create()
        return service.ScheduleCreate(
            rrule=self.rrule,
            timezone=self.timezone,
            starts_at=self.starts_at or utcnow(),
            ends_at=self.ends_at,
            campaign=campaign,
        )


class ScheduleRead(BaseModel):
    schedule_id: str = Field(description="A string, as campaign ids are")
    status: str = Field(description="active, paused, ended or cancelled")
    rrule: str
    timezone: str
    starts_at: datetime
    ends_at: datetime | None
    next_at: datetime | None = Field(description="The next occurrence (UTC); null once none is left")
    occurrences: int = Field(description="Occurrences started so far")
    created_at: datetime


def _read(schedule: Schedule) -> ScheduleRead:
    return ScheduleRead(
        schedule_id=str(schedule.id),
        status=schedule.status,
        rrule=schedule.rrule,
        timezone=schedule.timezone,
        starts_at=as_utc(schedule.starts_at),
        ends_at=None if schedule.ends_at is None else as_utc(schedule.ends_at),
        next_at=None if schedule.next_at is None else as_utc(schedule.next_at),
        occurrences=schedule.occurrences,
        created_at=as_utc(schedule.created_at),
    )


@router.post("", status_code=201, response_model=ScheduleRead)
async def create_schedule(
    body: ScheduleIn, app: ScopedAppDep, session: SessionDep, once: OnceDep
) -> JSONResponse:
    schedule = await service.create(session, app, body.create(), utcnow())
    return await once.record(201, _read(schedule))


@router.get("")
async def list_schedules(app: ScopedAppDep, session: SessionDep, asked: PageDep) -> Page[ScheduleRead]:
    found = await service.listing(session, app, asked.after, asked.fetch)
    return paged(found, asked, lambda schedule: schedule.id, _read)


@router.get("/{schedule_id}")
async def show_schedule(schedule_id: PathId, app: ScopedAppDep, session: SessionDep) -> ScheduleRead:
    return _read(await service.get(session, app, schedule_id))


@router.post("/{schedule_id}/pause")
async def pause_schedule(schedule_id: PathId, app: ScopedAppDep, session: SessionDep) -> ScheduleRead:
    """No occurrence starts until it is resumed (those in between are skipped)."""
    return _read(await service.pause(session, app, schedule_id))


@router.post("/{schedule_id}/resume")
async def resume_schedule(schedule_id: PathId, app: ScopedAppDep, session: SessionDep) -> ScheduleRead:
    """Active again from the next occurrence after now."""
    return _read(await service.resume(session, app, schedule_id, utcnow()))


@router.post("/{schedule_id}/cancel")
async def cancel_schedule(schedule_id: PathId, app: ScopedAppDep, session: SessionDep) -> ScheduleRead:
    """No further occurrence; campaigns it started are ordinary campaigns. An ended or cancelled
    schedule answers 409 `schedule_finished`."""
    return _read(await service.cancel(session, app, schedule_id))

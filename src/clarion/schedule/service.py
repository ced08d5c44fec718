"""Recurring campaigns: an RFC 5545 RRULE (python-dateutil) read in an IANA time zone.

Occurrences are wall-clock times in the schedule's zone (09:00 stays 09:00 across a DST change); one
that falls in a spring gap is read with the offset before the change, one in an autumn overlap is its
first occurrence, and each wall-clock time is one occurrence (never two). A schedule keeps only its
next occurrence (`next_at`, UTC); the scheduler that moves it on to the one after, in a conditional
UPDATE, is the one that makes the occurrence's campaign, in the same transaction, so one campaign is
made per occurrence however many schedulers race (and `ux_campaign_occurrence` backs that up). A
scheduler that was down makes the occurrences it missed when it is back, in order, one per tick each.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr
from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors, validation
from clarion.campaign import service as campaigns
from clarion.campaign.schemas import AudienceSpec, Button, CampaignCreate, Content, SegmentTerm
from clarion.models import App, Campaign, Schedule, ScheduleStatus
from clarion.schedule.repository import ScheduleRepository

# A schedule starts a campaign at most hourly: a per-minute or per-second rule is a mistake, not a plan.
FREQUENCY = re.compile(r"(^|;)FREQ=(YEARLY|MONTHLY|WEEKLY|DAILY|HOURLY)(;|$)")


@dataclass(frozen=True)
class ScheduleCreate:
    rrule: str
    timezone: str
    starts_at: datetime  # DTSTART: a naive time is a wall-clock time in `timezone`
    ends_at: datetime | None
    campaign: CampaignCreate


def _rule(text: str, zone: ZoneInfo, starts_at: datetime) -> rrule:
    """The RRULE with its DTSTART; a 422 naming `rrule` when it cannot be read."""
    body = text.strip().removeprefix("RRULE:")
    if not body or "\n" in body or "DTSTART" in body.upper() or not validation.storable(body):
        raise errors.InvalidField("rrule: one RFC 5545 RRULE line, e.g. FREQ=DAILY;BYHOUR=9", field="rrule")
    _check_satisfiable(body)
    try:
        rule = rrulestr(body, dtstart=starts_at.astimezone(zone).replace(second=0, microsecond=0))
    except (ValueError, TypeError, OverflowError, KeyError, IndexError) as invalid:
        raise errors.InvalidField(f"rrule: {invalid}", field="rrule") from None
    if not isinstance(rule, rrule) or not FREQUENCY.search(body.upper()):
        raise errors.InvalidField(
            "rrule: FREQ must be YEARLY, MONTHLY, WEEKLY, DAILY or HOURLY", field="rrule"
        )
    return rule


# python-dateutil looks for a rule's next occurrence period by period up to the year 9999, so a rule that
# can never match (February 30th) would take minutes of CPU: the parts that can make such a rule are
# refused or checked here, before it is read.
UNSUPPORTED_PARTS = ("BYSETPOS", "BYYEARDAY", "BYWEEKNO", "BYEASTER")
DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# A weekday's ordinal within a month (5 Mondays at most), or within a year.
MAX_ORDINAL_IN_MONTH, MAX_ORDINAL_IN_YEAR = 5, 53


def _parts(body: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for part in body.upper().split(";"):
        name, _, value = part.partition("=")
        parts[name.strip()] = value.strip()
    return parts


def _numbers(value: str, field: str) -> list[int]:
    try:
        return [int(item) for item in value.split(",")] if value else []
    except ValueError:
        raise errors.InvalidField(f"rrule: {field} must be a list of numbers", field="rrule") from None


def _check_satisfiable(body: str) -> None:
    """Refuse the rules that could never occur (or that Clarion does not read): a 422 on `rrule`."""
    parts = _parts(body)
    unsupported = [name for name in UNSUPPORTED_PARTS if name in parts]
    if unsupported:
        raise errors.InvalidField(f"rrule: {', '.join(unsupported)} is not supported", field="rrule")
    months = _numbers(parts.get("BYMONTH", ""), "BYMONTH") or list(range(1, 13))
    days = _numbers(parts.get("BYMONTHDAY", ""), "BYMONTHDAY")
    if days and not any(
        1 <= month <= 12 and 1 <= abs(day) <= DAYS_IN_MONTH[month - 1] for month in months for day in days
    ):
        raise errors.InvalidField("rrule: no month has the days BYMONTHDAY names", field="rrule")
    in_month = parts.get("FREQ") == "MONTHLY" or "BYMONTH" in parts
    limit = MAX_ORDINAL_IN_MONTH if in_month else MAX_ORDINAL_IN_YEAR
    for day in parts.get("BYDAY", "").split(","):
        ordinal = day.strip().rstrip("MOTUWEHFRSA")
        if ordinal not in ("", "+", "-") and not (
            ordinal.lstrip("+-").isdigit() and 1 <= abs(int(ordinal)) <= limit
        ):
            raise errors.InvalidField(
                f"rrule: BYDAY {day.strip()}: no such weekday in a period", field="rrule"
            )


def rule_of(schedule: Schedule) -> rrule:
    return _rule(schedule.rrule, ZoneInfo(schedule.timezone), _aware(schedule.starts_at))


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def next_occurrence(
    rule: rrule, zone: ZoneInfo, after: datetime | None, ends_at: datetime | None
) -> datetime | None:
    """The first occurrence after `after` (None: the first of all), in UTC; None once past the end."""
    # Compared as wall-clock times in the zone (same tzinfo), so an autumn overlap is not doubled.
    found = next(iter(rule), None) if after is None else rule.after(_aware(after).astimezone(zone), inc=False)
    if found is None:
        return None
    when = found.astimezone(UTC)
    return None if ends_at is not None and when > _aware(ends_at) else when


def _template(spec: CampaignCreate) -> dict[str, Any]:
    return dataclasses.asdict(dataclasses.replace(spec, send_at=None))


def campaign_of(template: dict[str, Any]) -> CampaignCreate:
    content = template["content"]
    audience = template["audience"]
    platforms = audience["platforms"]
    return CampaignCreate(
        **{
            **template,
            "content": Content(**{**content, "buttons": tuple(Button(**b) for b in content["buttons"])}),
            "audience": AudienceSpec(
                kind=audience["kind"],
                values=tuple(audience["values"]),
                terms=tuple(SegmentTerm(**term) for term in audience["terms"]),
                segment=audience["segment"],
                platforms=None if platforms is None else tuple(platforms),
            ),
            "send_at": None,
        }
    )


async def create(session: AsyncSession, app: App, spec: ScheduleCreate, now: datetime) -> Schedule:
    zone = ZoneInfo(validation.time_zone(spec.timezone, "timezone"))
    starts_at = spec.starts_at if spec.starts_at.tzinfo else spec.starts_at.replace(tzinfo=zone)
    rule = _rule(spec.rrule, zone, starts_at)
    if spec.ends_at is not None and _aware(spec.ends_at) <= now:
        raise errors.InvalidField("ends_at: must be in the future", field="ends_at")
    await campaigns.validate(session, app, spec.campaign)
    first = next_occurrence(rule, zone, None, spec.ends_at)
    # Occurrences before now are not started: a schedule begins with its next one.
    if first is not None and first < now:
        first = next_occurrence(rule, zone, now, spec.ends_at)
    if first is None:
        raise errors.InvalidField("rrule: it has no occurrence from now on", field="rrule")
    schedule = Schedule(
        app_id=app.id,
        status=ScheduleStatus.ACTIVE,
        rrule=spec.rrule.strip().removeprefix("RRULE:"),
        timezone=spec.timezone,
        starts_at=starts_at.astimezone(UTC),
        ends_at=None if spec.ends_at is None else _aware(spec.ends_at),
        next_at=first,
        occurrences=0,
        template=_template(spec.campaign),
        created_at=now,
    )
    return await ScheduleRepository(session).add(schedule)


async def get(session: AsyncSession, app: App, schedule_id: int) -> Schedule:
    schedule = await ScheduleRepository(session).get(app.id, schedule_id)
    if schedule is None:
        raise errors.NotFound(f"There is no schedule {schedule_id} in this app", field="schedule_id")
    return schedule


async def listing(session: AsyncSession, app: App, after_id: int, limit: int) -> list[Schedule]:
    return await ScheduleRepository(session).page(app.id, after_id, limit)


async def pause(session: AsyncSession, app: App, schedule_id: int) -> Schedule:
    """No occurrence starts while paused (those that fall in the pause are skipped, not caught up)."""
    schedule = await get(session, app, schedule_id)
    return await _change(session, schedule, (ScheduleStatus.ACTIVE,), ScheduleStatus.PAUSED, schedule.next_at)


async def resume(session: AsyncSession, app: App, schedule_id: int, now: datetime) -> Schedule:
    """Active again from the next occurrence after now (an end already passed ends it)."""
    schedule = await get(session, app, schedule_id)
    upcoming = next_occurrence(rule_of(schedule), ZoneInfo(schedule.timezone), now, schedule.ends_at)
    status = ScheduleStatus.ACTIVE if upcoming is not None else ScheduleStatus.ENDED
    return await _change(session, schedule, (ScheduleStatus.PAUSED, ScheduleStatus.ACTIVE), status, upcoming)


async def cancel(session: AsyncSession, app: App, schedule_id: int) -> Schedule:
    """No further occurrence; campaigns already started are ordinary campaigns (cancel them one by one)."""
    schedule = await get(session, app, schedule_id)
    allowed = (ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED)
    return await _change(session, schedule, allowed, ScheduleStatus.CANCELLED, None)


async def _change(
    session: AsyncSession, schedule: Schedule, allowed: tuple[str, ...], status: str, next_at: datetime | None
) -> Schedule:
    if not await ScheduleRepository(session).change(schedule, allowed, status, next_at):
        raise errors.ScheduleFinished()
    return schedule


async def start_occurrence(session: AsyncSession, schedule: Schedule, app: App) -> Campaign | None:
    """Claim the schedule's due occurrence and make its campaign (in the caller's transaction); None
    when another scheduler claimed it first."""
    occurrence = _aware(schedule.next_at) if schedule.next_at else None
    if occurrence is None:
        return None
    upcoming = next_occurrence(rule_of(schedule), ZoneInfo(schedule.timezone), occurrence, schedule.ends_at)
    if not await ScheduleRepository(session).advance(schedule.id, occurrence, upcoming):
        return None
    spec = dataclasses.replace(campaign_of(schedule.template), send_at=occurrence)
    return await campaigns.create(session, app, spec, api_quota=False, occurrence=(schedule.id, occurrence))


async def skip_occurrence(session: AsyncSession, schedule: Schedule) -> bool:
    """Move past an occurrence whose campaign cannot be made (its tag was deleted, say)."""
    occurrence = _aware(schedule.next_at) if schedule.next_at else None
    if occurrence is None:
        return False
    upcoming = next_occurrence(rule_of(schedule), ZoneInfo(schedule.timezone), occurrence, schedule.ends_at)
    return await ScheduleRepository(session).advance(schedule.id, occurrence, upcoming)

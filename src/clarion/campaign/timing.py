"""When each recipient of a campaign is released: its local time, the app's quiet hours.

Best time (`BestTime`): each recipient at the local hour of most of its clicks of the last 30 days;
the plan holds the zones' UTC offsets over those days and each zone's 24 hour slots, and the same
statement picks the hour and its slot per recipient.

Pure (zoneinfo only): `release_plan` turns a campaign's start, its local time of day and the app's
quiet hours into one release instant per time zone (zones sharing an instant grouped together), and
the zones whose recipients are dropped by quiet hours. The plan is computed once, when the campaign is
claimed, stored on the campaign, and applied by the fan-out as one CASE on the subscriber's zone in the
statement that adds a page to the ledger: no per-recipient work in Python.

DST: a wall-clock time that does not exist on a day (the spring gap) is read with the offset before
the change (02:30 in New York on the spring day is 03:30 EDT); one that happens twice (the autumn
overlap) is its first occurrence.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clarion.models import App, Campaign

PastZones = Literal["tomorrow", "now"]
QuietMode = Literal["hold", "drop"]
UTC_ZONE = "UTC"


def parse_clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def zone_or_utc(name: str | None) -> ZoneInfo:
    """The zone by name; UTC for none or one this server's tzdata does not know (stored before a
    tzdata update removed it, say)."""
    try:
        return ZoneInfo(name or UTC_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(UTC_ZONE)


def _wall(day: date, at: time, zone: ZoneInfo) -> datetime:
    """That wall-clock time on that day in the zone, in UTC (fold=0: see the module's note on DST)."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def local_release(start: datetime, at: time, zone: ZoneInfo, past: PastZones) -> datetime:
    """When `at` next comes in the zone, from `start` on (within 24 hours). A zone whose `at` has
    already passed on its current day gets it tomorrow, or at `start` with past="now"."""
    local_day = start.astimezone(zone).date()
    today = _wall(local_day, at, zone)
    if today >= start:
        return today
    return start if past == "now" else _wall(local_day + timedelta(days=1), at, zone)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A local-time window (start included, end excluded) that may wrap midnight, e.g. 22:00-07:00."""

    start: time
    end: time
    mode: QuietMode

    def end_after(self, when: datetime, zone: ZoneInfo) -> datetime | None:
        """The window's end if `when` falls inside it in the zone, else None."""
        local = when.astimezone(zone)
        moment, day = local.time().replace(tzinfo=None), local.date()
        if self.start == self.end:
            return None
        if self.start < self.end:
            inside = self.start <= moment < self.end
            end_day = day
        else:
            inside = moment >= self.start or moment < self.end
            end_day = day + timedelta(days=1) if moment >= self.start else day
        return _wall(end_day, self.end, zone) if inside else None


CLICK_WINDOW = timedelta(days=30)  # a best-time campaign reads each recipient's clicks of this long


def offset_segments(zone: ZoneInfo, since: datetime, until: datetime) -> tuple[tuple[datetime, int], ...]:
    """The zone's UTC offset (seconds) over since..until, as (from, offset) segments, the first from
    `since`: a DST change within the window starts a new segment (found to the minute)."""

    def offset(at: datetime) -> int:
        delta = at.astimezone(zone).utcoffset()
        return 0 if delta is None else int(delta.total_seconds())

    segments = [(since, offset(since))]
    at = since
    while at < until:
        step = min(at + timedelta(hours=6), until)
        if offset(step) != segments[-1][1]:
            low, high = at, step  # the change is in (low, high]: halve it down to a minute
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                low, high = (low, middle) if offset(middle) != segments[-1][1] else (middle, high)
            segments.append((high.replace(second=0, microsecond=0), offset(high)))
        at = step
    return tuple(segments)


def hour_slots(start: datetime, zone: ZoneInfo, quiet: QuietHours | None) -> tuple[datetime, ...]:
    """For each local hour 0-23, when a best-time recipient in the zone whose hour it is gets released:
    the hour's next HH:00 within 24 hours of `start` (at once for the hour `start` falls in), moved to
    the end of quiet hours when inside them (held whatever the quiet mode: the hour was chosen for it)."""
    local = start.astimezone(zone)
    slots = []
    for hour in range(24):
        when = start if hour == local.hour else _wall(local.date(), time(hour), zone)
        if when < start:
            when = _wall(local.date() + timedelta(days=1), time(hour), zone)
        end = None if quiet is None else quiet.end_after(when, zone)
        slots.append(when if end is None else end)
    return tuple(slots)


def _grouped(values: dict[str, Any]) -> tuple[tuple[tuple[str, ...], Any], ...]:
    """Zones sharing one value, grouped: the SQL's CASE has one branch per group, not per zone."""
    groups: dict[Any, list[str]] = defaultdict(list)
    for name, value in sorted(values.items()):
        groups[value].append(name)
    return tuple((tuple(names), value) for value, names in groups.items())


def _iso(values: tuple[datetime, ...]) -> list[str]:
    return [value.isoformat() for value in values]


@dataclass(frozen=True, slots=True)
class BestTime:
    """A best-time campaign's part of the plan. A recipient's hour is the local hour of most of its
    clicks since `since` (the campaign's start less 30 days), read in SQL with each zone's UTC offset at
    the click's time (`offsets`, grouped zones, each a list of (from, seconds) segments); its release is
    that hour's slot in its zone (`slots`, 24 instants per group of zones). Subscribers with no zone, or
    one not seen when planned, take the `default_*` values (the app's default zone)."""

    since: datetime
    until: datetime
    offsets: tuple[tuple[tuple[str, ...], tuple[tuple[datetime, int], ...]], ...]
    default_offsets: tuple[tuple[datetime, int], ...]
    slots: tuple[tuple[tuple[str, ...], tuple[datetime, ...]], ...]
    default_slots: tuple[datetime, ...]

    def slots_past(self, now: datetime) -> tuple[bool, ...]:
        """Which hour slots have come by `now`: every group's 24, then the default's."""
        every = [slot for _, slots in self.slots for slot in slots] + list(self.default_slots)
        return tuple(slot <= now for slot in every)

    def to_json(self) -> dict[str, Any]:
        def segments(values: tuple[tuple[datetime, int], ...]) -> list[list[Any]]:
            return [[at.isoformat(), seconds] for at, seconds in values]

        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "offsets": [{"zones": list(z), "segments": segments(v)} for z, v in self.offsets],
            "default_offsets": segments(self.default_offsets),
            "slots": [{"zones": list(z), "at": _iso(v)} for z, v in self.slots],
            "default_slots": _iso(self.default_slots),
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> BestTime:
        def segments(values: list[list[Any]]) -> tuple[tuple[datetime, int], ...]:
            return tuple((datetime.fromisoformat(at), int(seconds)) for at, seconds in values)

        def instants(values: list[str]) -> tuple[datetime, ...]:
            return tuple(datetime.fromisoformat(value) for value in values)

        return BestTime(
            since=datetime.fromisoformat(data["since"]),
            until=datetime.fromisoformat(data["until"]),
            offsets=tuple((tuple(o["zones"]), segments(o["segments"])) for o in data["offsets"]),
            default_offsets=segments(data["default_offsets"]),
            slots=tuple((tuple(o["zones"]), instants(o["at"])) for o in data["slots"]),
            default_slots=instants(data["default_slots"]),
        )


def best_time(
    start: datetime, zones: list[str], default_zone: str | None, quiet: QuietHours | None
) -> BestTime:
    """The offsets and hour slots of every zone seen (and of the default zone) for a start."""
    since = start - CLICK_WINDOW
    names = sorted(set(zones))
    default = zone_or_utc(default_zone)
    return BestTime(
        since=since,
        until=start,
        offsets=_grouped({name: offset_segments(zone_or_utc(name), since, start) for name in names}),
        default_offsets=offset_segments(default, since, start),
        slots=_grouped({name: hour_slots(start, zone_or_utc(name), quiet) for name in names}),
        default_slots=hour_slots(start, default, quiet),
    )


@dataclass(frozen=True, slots=True)
class ReleasePlan:
    """Zones grouped by their release instant; `default_at` is for every other subscriber (no zone,
    or one not seen when planned: the app's default zone's instant). Dropped zones end in the ledger
    as `expired` with the reason `quiet_hours`."""

    groups: tuple[tuple[datetime, tuple[str, ...]], ...]
    default_at: datetime
    dropped: tuple[str, ...]
    default_dropped: bool
    best: BestTime | None = None  # a best-time campaign: the plan above is for recipients without clicks

    @property
    def last_at(self) -> datetime:
        best = [] if self.best is None else [*self.best.default_slots, *(max(v) for _, v in self.best.slots)]
        return max([self.default_at, *(at for at, _ in self.groups), *best])

    def past(self, now: datetime) -> tuple[bool, ...]:
        """Which release instants have come by `now` (each group's, the default's, then a best-time
        plan's hour slots): what the statement that adds a page with this plan is shaped by."""
        slots = () if self.best is None else self.best.slots_past(now)
        return (*(at <= now for at, _ in self.groups), self.default_at <= now, *slots)

    def to_json(self) -> dict[str, Any]:
        return {
            "groups": [{"at": at.isoformat(), "zones": list(zones)} for at, zones in self.groups],
            "default_at": self.default_at.isoformat(),
            "dropped": list(self.dropped),
            "default_dropped": self.default_dropped,
            **({} if self.best is None else {"best": self.best.to_json()}),
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> ReleasePlan:
        return ReleasePlan(
            groups=tuple((datetime.fromisoformat(g["at"]), tuple(g["zones"])) for g in data["groups"]),
            default_at=datetime.fromisoformat(data["default_at"]),
            dropped=tuple(data["dropped"]),
            default_dropped=bool(data["default_dropped"]),
            best=BestTime.from_json(data["best"]) if "best" in data else None,
        )


def _release(
    start: datetime, zone: ZoneInfo, at: time | None, past: PastZones, quiet: QuietHours | None
) -> datetime | None:
    """One zone's release instant; None when quiet hours drop it."""
    when = start if at is None else local_release(start, at, zone, past)
    if quiet is None:
        return when
    end = quiet.end_after(when, zone)
    if end is None:
        return when
    return None if quiet.mode == "drop" else end


def release_plan(
    start: datetime,
    zones: list[str],
    default_zone: str | None,
    at: time | None,
    past: PastZones,
    quiet: QuietHours | None,
) -> ReleasePlan:
    """Each zone's release from `start`: at the local time `at` (None: at `start`), moved to the end of
    quiet hours (or dropped) when it falls inside them."""
    default_at = _release(start, zone_or_utc(default_zone), at, past, quiet)
    by_instant: dict[datetime, list[str]] = defaultdict(list)
    dropped: list[str] = []
    for name in sorted(set(zones)):
        when = _release(start, zone_or_utc(name), at, past, quiet)
        if when is None:
            dropped.append(name)
        else:
            by_instant[when].append(name)
    return ReleasePlan(
        groups=tuple((when, tuple(names)) for when, names in sorted(by_instant.items())),
        default_at=start if default_at is None else default_at,
        dropped=tuple(dropped),
        default_dropped=default_at is None,
    )


def needs_plan(campaign: Campaign, app: App) -> bool:
    """A local-time (or best-time) campaign, or a non-transactional one of an app with quiet hours."""
    quiet = app.quiet_start is not None and app.quiet_end is not None
    return campaign.local_time is not None or campaign.best_time or (quiet and not campaign.is_transactional)


def plan_for(campaign: Campaign, app: App, zones: list[str]) -> ReleasePlan:
    """The campaign's release plan from its send_at (the start of its 24 hours)."""
    quiet = None
    if app.quiet_start and app.quiet_end and not campaign.is_transactional:
        mode: QuietMode = "drop" if app.quiet_mode == "drop" else "hold"
        quiet = QuietHours(parse_clock(app.quiet_start), parse_clock(app.quiet_end), mode)
    at = None if campaign.local_time is None else parse_clock(campaign.local_time)
    past: PastZones = "now" if campaign.past_zones == "now" else "tomorrow"
    start = campaign.send_at if campaign.send_at.tzinfo else campaign.send_at.replace(tzinfo=UTC)
    planned = release_plan(start, zones, app.default_timezone, at, past, quiet)
    if not campaign.best_time:
        return planned
    return replace(planned, best=best_time(start, zones, app.default_timezone, quiet))

"""/v1/apps/{app_key}/campaigns: create (the Gravitec push body's every rule, plus platforms), the
history, one campaign with its funnel, its per-recipient outcomes, its time series, cancel; and the
audience dry run. Rules live in campaign/ (and gravitec/push_body.py, the one reader of a push body)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from clarion import content, errors, validation
from clarion.campaign import service as campaigns
from clarion.campaign.schemas import AudienceSpec, CampaignCreate
from clarion.campaign.timing import ReleasePlan
from clarion.db import as_utc
from clarion.delivery.cancel import cancel
from clarion.gravitec import push_body
from clarion.models import Campaign
from clarion.runtime import SessionDep, wake_scheduler_after_commit
from clarion.v1.access import ScopedAppDep
from clarion.v1.body import Body
from clarion.v1.idempotency import OnceDep
from clarion.v1.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, decode_cursor, page_of
from clarion.validation import PathId

router = APIRouter(prefix="/apps/{app_key}", tags=["Campaigns"])

Platform = Literal["web", "android", "ios", "adm", "wns"]
Association = Literal["AND", "AND_NOT", "OR", "OR_NOT"]


class ButtonIn(Body):
    title: str
    url: str


class PayloadIn(Body):
    message: str
    title: str | None = None
    icon: str | None = Field(None, description="http(s) URL ending .jpg, .jpeg or .png")
    image: str | None = Field(None, description="http(s) URL ending .jpg, .jpeg or .png")
    redirect_url: str
    buttons: list[ButtonIn] | None = None


class TermIn(Body):
    association: Association
    name: str


class AudienceIn(Body):
    """Exactly one of these: reg_ids, aliases, tag names, or a tags_segment."""

    tokens: list[str] | None = None
    aliases: list[str] | None = None
    tags: list[str] | None = None
    tags_segment: list[TermIn] | None = None


class AudienceQuery(Body):
    """Whom to send to: everyone (neither `segments` nor `audience`), a saved segment or an audience;
    `platforms` narrows any of them."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"audience": {"tags": ["news"]}, "platforms": ["web", "android"]}]},
    )
    segments: list[str] | None = Field(None, description="One saved segment, by name or id")
    audience: AudienceIn | None = None
    platforms: list[Platform] | None = Field(None, min_length=1, description="Absent: every platform")

    def spec(self) -> AudienceSpec:
        chosen = push_body.parse_audience(
            self.model_dump(exclude_none=True, include={"segments", "audience"})
        )
        platforms = None if self.platforms is None else campaigns.chosen_platforms(self.platforms)
        return replace(chosen, platforms=platforms)


class CampaignIn(AudienceQuery):
    """A campaign: the Gravitec v3 push body (its rules, checked by the same code), with `send_at` as
    an ISO time, plus `platforms`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "payload": {
                        "title": "Breaking",
                        "message": "Something happened",
                        "redirect_url": "https://example.com/news/1",
                    },
                    "audience": {"tags": ["news"]},
                    "platforms": ["web"],
                    "ttl": 3600,
                }
            ]
        },
    )
    payload: PayloadIn
    send_at: datetime | None = Field(None, description="When to send (absent: now); must be in the future")
    ttl: int | None = Field(None, description="Seconds a push service keeps it (0-2419200; default 28800)")
    display_time: int | None = Field(None, description="Seconds a browser shows it (default 60)")
    push_tag: str | None = None
    is_transactional: bool = False
    local_time: str | None = Field(
        None,
        description="HH:MM: sent at this time in each subscriber's time zone (their own, else the app's "
        "default_timezone, else UTC), within 24 hours of send_at",
    )
    past_zones: Literal["tomorrow", "now"] = Field(
        "tomorrow", description="With local_time: zones already past it get it tomorrow, or now"
    )
    best_time: bool = Field(
        False,
        description="Each subscriber at its most engaged local hour (its clicks of the last 30 days), "
        "within 24 hours of send_at; local_time (required with it) for subscribers without clicks",
    )

    def create(self) -> CampaignCreate:
        body: dict[str, Any] = self.model_dump(
            exclude_none=True, exclude={"platforms", "send_at", "local_time", "past_zones", "best_time"}
        )
        if self.send_at is not None:
            when = self.send_at if self.send_at.tzinfo else self.send_at.replace(tzinfo=UTC)
            body["send_date"] = int(when.timestamp() * 1000)
        try:
            spec = push_body.parse(body)
        except errors.InvalidField as invalid:
            if invalid.field != "send_date":
                raise
            message = invalid.message.replace("send_date", "send_at", 1)
            raise errors.InvalidField(message, field="send_at") from None
        if self.local_time is not None:
            validation.clock_time(self.local_time, "local_time")
        return replace(
            spec,
            audience=replace(spec.audience, platforms=self.spec().platforms),
            local_time=self.local_time,
            past_zones=self.past_zones,
            best_time=self.best_time,
        )


class ButtonRead(BaseModel):
    title: str
    url: str | None


class ReleaseRead(BaseModel):
    at: datetime | None = Field(description="null: dropped by quiet hours")
    zones: list[str] = Field(description="IANA zones; (default): subscribers with no zone of their own")
    dropped: bool = False


class CampaignRead(BaseModel):
    campaign_id: str = Field(description="64-bit: a string, so that JavaScript reads it whole")
    status: str
    title: str | None
    message: str
    redirect_url: str | None
    icon: str | None
    image: str | None
    buttons: list[ButtonRead]
    audience: dict[str, Any] = Field(description="kind (all, tokens, aliases, tags, tags_segment, batch)")
    platforms: list[str] | None
    send_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    ttl: int
    display_time: int
    push_tag: str | None
    is_transactional: bool
    urgency: str
    local_time: str | None = Field(description="HH:MM in each subscriber's zone, or null")
    past_zones: str | None = Field(description="With local_time: tomorrow or now")
    best_time: bool = Field(description="Sent at each subscriber's most engaged hour (local_time: fallback)")
    schedule_id: str | None = Field(description="The recurring schedule it is an occurrence of")
    releases: list[ReleaseRead] | None = Field(
        description="Per group of time zones, when its recipients are released (fixed when the campaign "
        "starts; local time or quiet hours); null: all at once"
    )


class FunnelRead(BaseModel):
    audience: int = Field(description="Recipients the campaign was fanned out to so far")
    pending: int
    sent: int
    failed: int
    failed_by_reason: dict[str, int] = Field(description="Failed (rejected or given up) by reason class")
    gone: int = Field(description="The address no longer exists: its subscriber was deactivated")
    expired: int = Field(description="Not sent within the TTL")
    cancelled: int = Field(description="Not sent: the campaign was cancelled first")
    received: int
    clicked: int
    closed: int
    rates: dict[str, float] = Field(description="delivered: sent/audience; the others over sent")


class CampaignDetail(CampaignRead):
    funnel: FunnelRead


class OutcomeRead(BaseModel):
    delivery_id: int
    reg_id: str
    platform: str
    status: str
    attempts: int
    reason: str | None = Field(description="The push service's reason, for a failure")
    best_hour: int | None = Field(
        description="Best time: the local hour (0-23) chosen from its clicks; null: local_time, or none"
    )
    updated_at: datetime


class SeriesPoint(BaseModel):
    at: datetime
    sent: int = 0
    received: int = 0
    clicked: int = 0
    closed: int = 0


class SeriesRead(BaseModel):
    campaign_id: str
    interval: str
    points: list[SeriesPoint]


class DryRunRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"total": 3, "by_platform": {"web": 2, "ios": 1}}]}
    )
    total: int
    by_platform: dict[str, int]


def _utc(when: datetime | None) -> datetime | None:
    return None if when is None else as_utc(when)


def _read(campaign: Campaign) -> dict[str, Any]:
    shown = content.decode(campaign.payload)
    audience = dict(campaign.audience)
    return {
        "campaign_id": str(campaign.id),
        "status": campaign.status,
        "title": shown.title,
        "message": shown.message,
        "redirect_url": shown.url,
        "icon": shown.icon,
        "image": shown.image,
        "buttons": [ButtonRead(title=b.title, url=b.action) for b in shown.buttons],
        "audience": {k: v for k, v in audience.items() if k in ("kind", "segment_id", "batch_id")},
        "platforms": audience.get("platforms"),
        "send_at": as_utc(campaign.send_at),
        "created_at": as_utc(campaign.created_at),
        "started_at": _utc(campaign.started_at),
        "finished_at": _utc(campaign.finished_at),
        "ttl": campaign.ttl_s,
        "display_time": campaign.display_time_s,
        "push_tag": campaign.push_tag,
        "is_transactional": campaign.is_transactional,
        "urgency": campaign.urgency,
        "local_time": campaign.local_time,
        "past_zones": campaign.past_zones,
        "best_time": campaign.best_time,
        "schedule_id": None if campaign.schedule_id is None else str(campaign.schedule_id),
        "releases": _releases(campaign),
    }


def _releases(campaign: Campaign) -> list[ReleaseRead] | None:
    """When each group of zones is (or was) released; None for a campaign sent to all at once."""
    if campaign.release_plan is None:
        return None
    plan = ReleasePlan.from_json(campaign.release_plan)
    shown = [ReleaseRead(at=at, zones=list(zones)) for at, zones in plan.groups]
    if plan.default_dropped:
        return [*shown, ReleaseRead(at=None, zones=["(default)"], dropped=True)]
    return [
        *shown,
        ReleaseRead(at=plan.default_at, zones=["(default)"]),
        *([ReleaseRead(at=None, zones=list(plan.dropped), dropped=True)] if plan.dropped else []),
    ]


async def _detail(session: SessionDep, campaign: Campaign) -> CampaignDetail:
    funnel = await campaigns.funnel(session, campaign)
    numbers = {name: getattr(funnel, name) for name in FunnelRead.model_fields if name != "rates"}
    return CampaignDetail(**_read(campaign), funnel=FunnelRead(**numbers, rates=funnel.rates))


@router.post("/campaigns", status_code=201, response_model=CampaignDetail)
async def create_campaign(
    body: CampaignIn, app: ScopedAppDep, session: SessionDep, once: OnceDep
) -> JSONResponse:
    campaign = await campaigns.create(session, app, body.create())
    wake_scheduler_after_commit(session)
    return await once.record(201, await _detail(session, campaign))


@router.get("/campaigns")
async def list_campaigns(
    app: ScopedAppDep,
    session: SessionDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    transactional: Annotated[bool, Query(description="Include transactional campaigns")] = False,
) -> Page[CampaignRead]:
    """The campaign history, newest first."""
    found = await campaigns.history(
        session, app, decode_cursor(cursor), limit + 1, transactional=transactional
    )
    items, next_cursor = page_of(found, limit, lambda c: c.id)
    return Page(items=[CampaignRead(**_read(c)) for c in items], next_cursor=next_cursor)


@router.get("/campaigns/{campaign_id}")
async def show_campaign(campaign_id: PathId, app: ScopedAppDep, session: SessionDep) -> CampaignDetail:
    return await _detail(session, await campaigns.get(session, app, campaign_id))


@router.post("/campaigns/{campaign_id}/cancel")
async def cancel_campaign(campaign_id: PathId, app: ScopedAppDep, session: SessionDep) -> CampaignDetail:
    """A scheduled campaign never starts; a sending one stops within a second or two; what was sent
    stays counted. A finished campaign answers 409 `campaign_finished`."""
    return await _detail(session, await cancel(session, app, campaign_id))


@router.post("/campaigns/{campaign_id}/pause")
async def pause_campaign(campaign_id: PathId, app: ScopedAppDep, session: SessionDep) -> CampaignDetail:
    """A scheduled campaign is held (status `paused`) until resumed; one that has started answers 409
    `campaign_not_scheduled`."""
    return await _detail(session, await campaigns.pause_scheduled(session, app, campaign_id))


@router.post("/campaigns/{campaign_id}/resume")
async def resume_campaign(campaign_id: PathId, app: ScopedAppDep, session: SessionDep) -> CampaignDetail:
    """A paused campaign is scheduled again; if its send_at passed meanwhile it starts at once. One that
    is not paused answers 409 `campaign_not_paused`."""
    campaign = await campaigns.resume_scheduled(session, app, campaign_id)
    wake_scheduler_after_commit(session)
    return await _detail(session, campaign)


OutcomeStatus = Literal["pending", "sent", "gone", "rejected", "expired", "failed", "cancelled"]


@router.get("/campaigns/{campaign_id}/outcomes")
async def campaign_outcomes(
    campaign_id: PathId,
    app: ScopedAppDep,
    session: SessionDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    status: OutcomeStatus | None = None,
    reason: Annotated[str | None, Query(max_length=255, description="The reason starts with this")] = None,
    min_attempts: Annotated[int | None, Query(ge=0, le=1000)] = None,
) -> Page[OutcomeRead]:
    """What became of each recipient, in ledger order (rows folded by retention are only counted)."""
    campaign = await campaigns.get(session, app, campaign_id)
    rows = await campaigns.outcomes(
        session,
        campaign,
        decode_cursor(cursor),
        limit + 1,
        status=status,
        reason=reason,
        min_attempts=min_attempts,
    )
    items, next_cursor = page_of(rows, limit, lambda row: row[0])
    fields = tuple(OutcomeRead.model_fields)
    shown = [OutcomeRead(**dict(zip(fields, (*row[:-1], as_utc(row[-1])), strict=True))) for row in items]
    return Page(items=shown, next_cursor=next_cursor)


INTERVALS = {"minute": 60, "hour": 3600, "day": 86400}


@router.get("/campaigns/{campaign_id}/series")
async def campaign_series(
    campaign_id: PathId,
    app: ScopedAppDep,
    session: SessionDep,
    interval: Literal["minute", "hour", "day"] = "hour",
) -> SeriesRead:
    """Sends and engagement per minute, hour or day (UTC buckets with something in them), for charts."""
    campaign = await campaigns.get(session, app, campaign_id)
    points: dict[int, SeriesPoint] = {}
    for start, kind, n in await campaigns.series(session, campaign, INTERVALS[interval]):
        point = points.setdefault(start, SeriesPoint(at=datetime.fromtimestamp(start, UTC)))
        setattr(point, kind, n)
    return SeriesRead(campaign_id=str(campaign.id), interval=interval, points=list(points.values()))


@router.post("/audience/dry-run", tags=["Audience"])
async def audience_dry_run(body: AudienceQuery, app: ScopedAppDep, session: SessionDep) -> DryRunRead:
    """The active recipients per platform that a campaign to this audience would have now; sends nothing."""
    counts = await campaigns.dry_run(session, app, body.spec())
    return DryRunRead(total=sum(counts.values()), by_platform=counts)

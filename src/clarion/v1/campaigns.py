"""/v1/apps/{app_key}/campaigns: create (the Gravitec push body's every rule, plus platforms), the
history, one campaign with its funnel, its per-recipient outcomes, its time series, cancel, pause and
resume; and the audience dry run. Rules live in campaign/ (and gravitec/push_body.py, the one reader
of a push body)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from clarion import content, errors, validation
from clarion.campaign import personal
from clarion.campaign import service as campaigns
from clarion.campaign import variants as ab
from clarion.campaign.schemas import AudienceSpec, CampaignCreate, Content
from clarion.campaign.timing import ReleasePlan
from clarion.db import as_utc
from clarion.delivery.cancel import cancel
from clarion.delivery.pause import pause, resume
from clarion.gravitec import push_body
from clarion.models import Campaign
from clarion.runtime import SessionDep, wake_scheduler_after_commit
from clarion.v1 import personalized
from clarion.v1.access import ScopedAppDep
from clarion.v1.body import Body
from clarion.v1.idempotency import OnceDep
from clarion.v1.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, decode_cursor, page_of
from clarion.validation import PathId

# A rate above 1,000,000 a minute (16,667 a second) is beyond what a deployment sends: a typo.
MAX_RATE_PER_MINUTE = 1_000_000

router = APIRouter(prefix="/apps/{app_key}", tags=["Campaigns"])

# Languages one campaign may carry besides its default: enough for a multilingual site, and a bound
# on the size of a campaign row.
MAX_LANGUAGES = 50
# Attribute conditions one audience may hold: each is one index probe per candidate.
MAX_CONDITIONS = 10
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


class LanguageIn(Body):
    """One language's texts; what is left out is the default payload's."""

    title: str | None = Field(None, min_length=1, max_length=1000)
    message: str = Field(min_length=1, max_length=1000)
    redirect_url: str | None = Field(None, min_length=1, max_length=1000)
    buttons: list[ButtonIn] | None = Field(None, min_length=1, max_length=2)


class TermIn(Body):
    association: Association
    name: str


class AudienceIn(Body):
    """Exactly one of these: reg_ids, aliases, tag names, or a tags_segment."""

    tokens: list[str] | None = None
    aliases: list[str] | None = None
    tags: list[str] | None = None
    tags_segment: list[TermIn] | None = None


class AttributeIn(Body):
    """`equals` takes `value`, `in` takes `values`, `exists` neither."""

    key: str
    op: Literal["equals", "exists", "in"]
    value: str | None = Field(None, max_length=255)
    values: list[Annotated[str, Field(max_length=255)]] | None = Field(None, min_length=1, max_length=100)


class AudienceQuery(Body):
    """Whom to send to: everyone (neither `segments` nor `audience`), a saved segment or an audience;
    `platforms` narrows any of them."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"audience": {"tags": ["news"]}, "platforms": ["web", "android"]}]},
    )
    segments: list[str] | None = Field(None, description="One saved segment, by name or id")
    audience: AudienceIn | None = None
    platforms: list[Platform] | None = Field(None, min_length=1, description="Absent: every platform")
    attributes: list[AttributeIn] | None = Field(
        None, max_length=MAX_CONDITIONS, description="Subscriber attributes every recipient has (all of them)"
    )

    def spec(self) -> AudienceSpec:
        chosen = push_body.parse_audience(
            self.model_dump(exclude_none=True, include={"segments", "audience"})
        )
        platforms = None if self.platforms is None else campaigns.chosen_platforms(self.platforms)
        conditions = [c.model_dump() for c in self.attributes or ()]
        return replace(chosen, platforms=platforms, attributes=personalized.conditions(conditions))


class VariantIn(Body):
    percent: int = Field(description="Whole percent of the audience (1-100)")
    payload: PayloadIn


class AbTestIn(Body):
    """A/B variants (docs/ab-variants.md): 2-4 variants, each its own content and percent; a holdout
    that is sent nothing; the rest (what the percents leave) sent the winner after `winner_after`."""

    variants: list[VariantIn] = Field(min_length=2, max_length=4)
    holdout_percent: int = Field(0, description="Percent sent nothing (0-99)")
    winner_after: int | None = Field(None, description="Seconds after the start; needs a rest")

    def parse(self, ttl_s: int) -> ab.AbTest:
        contents = tuple(self._content(index, v.payload) for index, v in enumerate(self.variants))
        split, _bodies, winner_after = ab.parse(self.model_dump(exclude_none=True), ttl_s)
        return ab.AbTest(split, contents, winner_after)

    @staticmethod
    def _content(index: int, payload: PayloadIn) -> Content:
        try:
            return push_body.parse_content({"payload": payload.model_dump(exclude_none=True)})
        except errors.InvalidField as invalid:
            field = f"ab_test.variants[{index}].{invalid.field}"
            raise errors.InvalidField(
                invalid.message.replace(str(invalid.field), field, 1), field=field
            ) from None


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
    payload: PayloadIn | None = Field(
        None, description="Required, unless `ab_test` gives the variants' contents"
    )
    ab_test: AbTestIn | None = None
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
    rate_per_minute: int | None = Field(
        None,
        ge=1,
        le=MAX_RATE_PER_MINUTE,
        description="Throttling: at most this many messages a minute, spread evenly across every worker"
        " (absent: as fast as the workers and push services allow). docs/pacing.md",
    )
    default_language: str | None = Field(None, description="The language of `payload` (BCP 47)")
    languages: dict[str, LanguageIn] | None = Field(
        None, max_length=MAX_LANGUAGES, description="Content per language (BCP 47 tag: texts)"
    )
    best_time: bool = Field(
        False,
        description="Each subscriber at its most engaged local hour (its clicks of the last 30 days), "
        "within 24 hours of send_at; local_time (required with it) for subscribers without clicks",
    )

    def create(self) -> CampaignCreate:
        body: dict[str, Any] = self.model_dump(
            exclude_none=True,
            exclude={
                "platforms", "attributes", "send_at", "default_language", "languages",
                "local_time", "past_zones", "rate_per_minute", "ab_test", "best_time",
            },
        )  # fmt: skip
        ab_test = None
        if self.ab_test is not None:
            if self.payload is not None:
                raise errors.InvalidField(
                    "payload: give either payload or ab_test, not both", field="payload"
                )
            ab_test = self.ab_test
            # The first variant stands for the campaign where one content is shown (its history).
            body["payload"] = ab_test.variants[0].payload.model_dump(exclude_none=True)
        # Absent (neither payload nor ab_test): the push body's own rule answers 422 naming it.
        urls = personal.template_urls(body["payload"]) if isinstance(body.get("payload"), dict) else {}
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
        shown = personal.with_urls(spec.content, urls)
        languages = {
            tag: texts.model_dump(exclude_none=True) for tag, texts in (self.languages or {}).items()
        }
        chosen = personal.personalization(shown, self.default_language, languages)
        narrowed = self.spec()
        audience = replace(spec.audience, platforms=narrowed.platforms, attributes=narrowed.attributes)
        spec = replace(
            spec,
            content=shown,
            audience=audience,
            personalization=chosen,
            local_time=self.local_time,
            past_zones=self.past_zones,
            rate_per_minute=self.rate_per_minute,
            best_time=self.best_time,
        )
        return spec if ab_test is None else replace(spec, ab_test=ab_test.parse(spec.ttl_s))


class ButtonRead(BaseModel):
    title: str
    url: str | None


class ReleaseRead(BaseModel):
    at: datetime | None = Field(description="null: dropped by quiet hours")
    zones: list[str] = Field(description="IANA zones; (default): subscribers with no zone of their own")
    dropped: bool = False


class LanguageRead(BaseModel):
    """One language's texts as sent: what its request left out is the default payload's."""

    title: str | None
    message: str
    redirect_url: str | None
    buttons: list[ButtonRead]


class VariantContentRead(BaseModel):
    percent: int
    title: str | None
    message: str
    redirect_url: str | None
    icon: str | None
    image: str | None
    buttons: list[ButtonRead]


class AbTestRead(BaseModel):
    variants: list[VariantContentRead] = Field(description="Variant 1 first (the campaign's own content)")
    holdout_percent: int = Field(description="Percent sent nothing")
    winner_after: int | None = Field(description="Seconds after the start the rest is sent the winner")
    winner: int | None = Field(description="The variant sent to the rest, once picked")


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
    rate_per_minute: int | None = Field(description="Throttling (messages a minute); null: none")
    default_language: str | None = Field(description="The language of the campaign's own texts (BCP 47)")
    languages: dict[str, LanguageRead] = Field(description="Content per language (BCP 47 tag: texts)")
    ab_test: AbTestRead | None = Field(description="A/B variants (docs/ab-variants.md); null: none")


class FunnelRead(BaseModel):
    audience: int = Field(description="Recipients the campaign was fanned out to so far")
    pending: int
    sent: int
    failed: int
    failed_by_reason: dict[str, int] = Field(description="Failed (rejected or given up) by reason class")
    gone: int = Field(description="The address no longer exists: its subscriber was deactivated")
    expired: int = Field(description="Not sent within the TTL")
    cancelled: int = Field(description="Not sent: the campaign was cancelled first")
    capped: int = Field(description="Not sent: the app's frequency cap was reached (not a failure)")
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
        "rate_per_minute": campaign.rate_per_minute,
        **_languages(campaign),
        "ab_test": _ab_test(campaign),
    }


def _languages(campaign: Campaign) -> dict[str, Any]:
    """default_language and languages, as campaigns.personalization stores them (campaign/personal.py)."""
    stored = campaign.personalization or {}
    languages = {
        tag: LanguageRead(
            title=texts.get("title"),
            message=texts["message"],
            redirect_url=texts.get("redirect_url"),
            buttons=[ButtonRead(title=b["title"], url=b["url"]) for b in texts.get("buttons") or ()],
        )
        for tag, texts in (stored.get("languages") or {}).items()
    }
    return {"default_language": stored.get("default_language"), "languages": languages}


def _ab_test(campaign: Campaign) -> AbTestRead | None:
    """An A/B campaign's split and each variant's content (campaigns.variants, campaign/variants.py)."""
    if campaign.variants is None:
        return None
    shown = []
    for variant in campaign.variants:
        one = content.decode(variant["payload"])
        shown.append(
            VariantContentRead(
                percent=variant["percent"],
                title=one.title,
                message=one.message,
                redirect_url=one.url,
                icon=one.icon,
                image=one.image,
                buttons=[ButtonRead(title=b.title, url=b.action) for b in one.buttons],
            )
        )
    return AbTestRead(
        variants=shown,
        holdout_percent=campaign.holdout_percent or 0,
        winner_after=campaign.winner_after_s,
        winner=campaign.winner_variant,
    )


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
    """A scheduled campaign is held until resumed; a sending one stops sending within a second or two
    across every worker (what was sent stays counted). Otherwise 409 `campaign_not_sending`."""
    return await _detail(session, await pause(session, app, campaign_id))


@router.post("/campaigns/{campaign_id}/resume")
async def resume_campaign(campaign_id: PathId, app: ScopedAppDep, session: SessionDep) -> CampaignDetail:
    """A paused campaign goes on: one paused before it started is scheduled again (at once if its send
    time passed), one paused while sending goes on where it stopped (409 `campaign_not_paused` otherwise)."""
    return await _detail(session, await resume(session, app, campaign_id))


OutcomeStatus = Literal["pending", "sent", "gone", "rejected", "expired", "failed", "cancelled", "capped"]


class VariantRead(BaseModel):
    group: str = Field(description="1-4 a variant, `holdout` (sent nothing), `rest` (sent the winner)")
    percent: int
    audience: int
    pending: int
    sent: int
    failed: int = Field(description="Not sent: gone, rejected, failed or expired")
    received: int
    clicked: int
    closed: int
    click_rate: float = Field(description="clicked / sent")


class VariantsRead(BaseModel):
    campaign_id: str
    winner: int | None = Field(description="The variant sent to the rest, once picked")
    winner_after: int | None
    groups: list[VariantRead]


@router.get("/campaigns/{campaign_id}/variants")
async def campaign_variants(campaign_id: PathId, app: ScopedAppDep, session: SessionDep) -> VariantsRead:
    """An A/B campaign's funnel per variant, holdout and rest (docs/ab-variants.md); a campaign without
    variants answers 404."""
    campaign = await campaigns.get(session, app, campaign_id)
    groups = await campaigns.variant_funnel(session, campaign)
    if groups is None:
        raise errors.NotFound(f"Campaign {campaign_id} has no A/B variants", field="campaign_id")
    return VariantsRead(
        campaign_id=str(campaign.id),
        winner=campaign.winner_variant,
        winner_after=campaign.winner_after_s,
        groups=[VariantRead(**g) for g in groups],
    )


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

"""Rules about campaigns: creation (audience resolution and quota), scheduling and statistics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, replace
from datetime import datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import content, errors, validation
from clarion.app_tenant import service as apps
from clarion.app_tenant.repository import AppRepository
from clarion.audience.repository import AudienceRepository
from clarion.audience.service import recipients
from clarion.campaign import payload, personal, variants
from clarion.campaign.repository import CampaignReportRepository, CampaignRepository
from clarion.campaign.schemas import (
    PLATFORMS,
    AudienceSpec,
    CampaignCreate,
    CampaignStats,
    Funnel,
    SegmentTerm,
)
from clarion.db import as_utc, utcnow
from clarion.models import (
    CANCELLED_REASON,
    HOLDOUT_REASON,
    App,
    Campaign,
    CampaignStatus,
    DeliveryStatus,
    Segment,
)
from clarion.validation import MAX_ID, ascii_int, storable

# Tag names (and their case-folded forms) are at most 255 symbols (Gravitec v3).
MAX_TAG_NAME = 255


def chosen_platforms(values: Iterable[str]) -> tuple[str, ...]:
    """The platforms a campaign (or a dry run) is narrowed to, /v1's `platforms` and the console's
    boxes alike: at least one, each a platform subscribers are on, each once, in the order given."""
    chosen = tuple(dict.fromkeys(values))
    if not chosen:
        raise errors.InvalidField("platforms: choose at least one platform", field="platforms")
    for platform in chosen:
        if platform not in PLATFORMS:
            raise errors.InvalidField(
                f"platforms: {platform!r} is not one of {', '.join(PLATFORMS)}", field="platforms"
            )
    return chosen


async def _resolve_terms(
    session: AsyncSession, app: App, terms: tuple[SegmentTerm, ...], field: str
) -> list[dict[str, Any]]:
    """tags_segment names must exist in the app; they are stored as tag ids."""
    tags = await CampaignRepository(session).tags_by_names(app.id, [t.name for t in terms])
    by_folded = {tag.name_folded: tag.id for tag in tags}
    resolved: list[dict[str, Any]] = []
    for index, term in enumerate(terms):
        tag_id = by_folded.get(term.name.casefold())
        if tag_id is None:
            raise errors.InvalidField(
                f"{field}[{index}].name: there is no tag {term.name!r} in this app",
                field=f"{field}[{index}].name",
            )
        resolved.append({"association": term.association, "tag_id": tag_id})
    return resolved


async def _audience(session: AsyncSession, app: App, spec: AudienceSpec) -> tuple[dict[str, Any], list[str]]:
    """The stored audience description and the target values that go with it."""
    stored, targets = await _audience_of_kind(session, app, spec)
    if spec.platforms is not None:
        stored["platforms"] = list(spec.platforms)
    if spec.attributes:
        stored["attributes"] = [{"key": c.key, "op": c.op, "values": list(c.values)} for c in spec.attributes]
    return stored, targets


async def _audience_of_kind(
    session: AsyncSession, app: App, spec: AudienceSpec
) -> tuple[dict[str, Any], list[str]]:
    if spec.segment is not None:
        segment = await find_segment(session, app, spec.segment)
        if segment is None:
            raise errors.InvalidField(
                f"segments[0]: there is no segment {str(spec.segment)!r} in this app", field="segments[0]"
            )
        terms = tuple(SegmentTerm(t["association"], t["name"]) for t in segment.tags_segment)  # type: ignore[arg-type]
        resolved = await _resolve_terms(session, app, terms, "segments[0]")
        return {"kind": "tags_segment", "segment_id": segment.id, "terms": resolved}, []
    if spec.kind == "tags_segment":
        resolved = await _resolve_terms(session, app, spec.terms, "audience.tags_segment")
        return {"kind": "tags_segment", "terms": resolved}, []
    if spec.kind == "tags":
        # A name whose folded form is longer than a tag can be names no tag: it selects nobody.
        folded = (value.casefold() for value in spec.values)
        return {"kind": "tags"}, [name for name in folded if len(name) <= MAX_TAG_NAME]
    return {"kind": spec.kind}, list(spec.values)


async def _check_quota(session: AsyncSession, app: App) -> None:
    """The free plan's API campaigns per UTC day. Call right before storing the campaign, in the same
    transaction: the app stays locked until the commit, so concurrent requests cannot all see the
    last slot free."""
    if app.plan != "free":
        return
    await AppRepository(session).lock(app.id)
    if await api_campaigns_today(session, app) >= apps.FREE_CAMPAIGNS_PER_DAY:
        raise errors.QuotaExceeded()


async def api_campaigns_today(session: AsyncSession, app: App) -> int:
    """The app's campaigns of this UTC day that count toward the free plan's quota (made through the API)."""
    now = utcnow()
    midnight = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    return await CampaignRepository(session).quota_campaigns_since(app.id, midnight)


async def _checked(
    session: AsyncSession, app: App, spec: CampaignCreate
) -> tuple[CampaignCreate, dict[str, Any], list[str], dict[str, Any] | None, list[dict[str, Any]] | None]:
    """The campaign's rules (before it is stored): its payload fits, its templates compile, its audience
    resolves; with what campaigns.personalization stores."""
    if spec.local_time is not None:
        validation.clock_time(spec.local_time, "local_time")
    elif spec.best_time:
        raise errors.InvalidField(
            "local_time: best_time needs it, the time for subscribers without recent clicks",
            field="local_time",
        )
    if spec.content.icon is None and app.default_icon:
        spec = replace(spec, content=replace(spec.content, icon=app.default_icon))
    if not payload.fits(spec.content, spec.display_time_s, spec.push_tag):
        raise errors.InvalidField(
            f"payload: the notification must fit {payload.MAX_PAYLOAD_BYTES} bytes once encoded",
            field="payload",
        )
    personalization = _personalization(spec)
    stored_variants = _variants(spec)
    audience, targets = await _audience(session, app, spec.audience)
    return spec, audience, targets, personalization, stored_variants


async def validate(session: AsyncSession, app: App, spec: CampaignCreate) -> None:
    """Check a campaign that will be made later (a recurring schedule's) without storing it."""
    await _checked(session, app, spec)


async def create(
    session: AsyncSession,
    app: App,
    spec: CampaignCreate,
    *,
    api_quota: bool = True,
    occurrence: tuple[int, datetime] | None = None,
) -> Campaign:
    """Store a campaign as scheduled. `api_quota`: it counts toward the free plan's API campaigns
    (the Gravitec API); a subscriber's own test notification does not. A push without an icon shows
    the site's default icon, if the app has one (Gravitec: "Not specifying an icon will set the
    default icon of the site"); it is stored in the campaign, so a later change of the default does
    not change a campaign already made. `occurrence`: the (schedule id, occurrence) it starts."""
    spec, audience, targets, personalization, stored_variants = await _checked(session, app, spec)
    if api_quota:
        await _check_quota(session, app)
    now = utcnow()
    campaign = Campaign(
        app_id=app.id,
        status=CampaignStatus.SCHEDULED,
        send_at=spec.send_at or now,
        ttl_s=spec.ttl_s,
        display_time_s=spec.display_time_s,
        push_tag=spec.push_tag,
        is_transactional=spec.is_transactional,
        urgency=spec.urgency,
        rate_per_minute=spec.rate_per_minute,
        payload=content.encode(_notification(spec)),
        audience=audience,
        created_at=now,
        fanout_done=False,
        counts_toward_quota=api_quota,
        local_time=spec.local_time,
        past_zones=None if spec.local_time is None else spec.past_zones,
        best_time=spec.best_time,
        schedule_id=None if occurrence is None else occurrence[0],
        occurrence_at=None if occurrence is None else occurrence[1],
        personalization=personalization,
        variants=stored_variants,
        holdout_percent=None if spec.ab_test is None else spec.ab_test.split.holdout_percent,
        winner_after_s=None if spec.ab_test is None else spec.ab_test.winner_after_s,
    )
    return await CampaignRepository(session).add(campaign, targets)


def _personalization(spec: CampaignCreate) -> dict[str, Any] | None:
    """campaigns.personalization: every template compiled (a 422 names the first that cannot be),
    every language's content held to the payload size rule; None when nothing is personal."""
    chosen = spec.personalization
    if chosen is None:
        return None
    languages = dict(chosen.languages)
    for tag, texts in languages.items():
        if not payload.fits(texts, spec.display_time_s, spec.push_tag):
            raise errors.InvalidField(
                f"languages.{tag}: the notification must fit {payload.MAX_PAYLOAD_BYTES} bytes once encoded",
                field=f"languages.{tag}",
            )
    contents = {"payload": spec.content, **{f"languages.{tag}": c for tag, c in languages.items()}}
    templates = chosen.templates and personal.has_templates(contents)
    if templates:
        personal.check(contents)
    return personal.stored(templates, chosen.default_language, languages)


def _variants(spec: CampaignCreate) -> list[dict[str, Any]] | None:
    """An A/B campaign's variants as stored: each its percent and its notification (content.encode)."""
    if spec.ab_test is None:
        return None
    stored = []
    for index, (percent, shown) in enumerate(
        zip(spec.ab_test.split.percents, spec.ab_test.contents, strict=True)
    ):
        if not payload.fits(shown, spec.display_time_s, spec.push_tag):
            field = f"ab_test.variants[{index}].payload"
            raise errors.InvalidField(
                f"{field}: the notification must fit {payload.MAX_PAYLOAD_BYTES} bytes once encoded",
                field=field,
            )
        stored.append(
            {"percent": percent, "payload": content.encode(_notification(replace(spec, content=shown)))}
        )
    return stored


def _notification(spec: CampaignCreate) -> content.Notification:
    """What every recipient gets; on load the campaign's id and columns (TTL, urgency) are set again."""
    shown = payload.notification("", spec.content, spec.display_time_s, spec.push_tag)
    return replace(shown, ttl_s=spec.ttl_s, high_priority=spec.urgency in ("normal", "high"))


async def recent(session: AsyncSession, app: App, limit: int) -> list[dict[str, Any]]:
    """The app's newest campaigns, as an operator lists them."""
    return [
        {
            "campaign_id": campaign.id,
            "status": campaign.status,
            "send_at": as_utc(campaign.send_at).isoformat(),
            "created_at": as_utc(campaign.created_at).isoformat(),
            "title": campaign.payload.get("title") or "",
        }
        for campaign in await CampaignRepository(session).recent(app.id, limit)
    ]


async def stats(session: AsyncSession, app: App, campaign_id: int) -> CampaignStats:
    campaign = await CampaignRepository(session).get(app.id, campaign_id)
    if campaign is None:
        raise errors.UnknownMessage()
    return await _stats(session, campaign)


async def stats_of_any(session: AsyncSession, campaign_id: int) -> CampaignStats:
    """A campaign's statistics whichever app it is (the admin API)."""
    campaign = await CampaignRepository(session).find(campaign_id)
    if campaign is None:
        raise errors.NotFound(f"There is no campaign {campaign_id}", field="campaign_id")
    return await _stats(session, campaign)


def shown(stats: CampaignStats) -> dict[str, Any]:
    """The statistics as JSON, as `clarion campaigns show` and the admin API print them."""
    return {**asdict(stats), "send_at": stats.send_at.isoformat()}


async def _stats(session: AsyncSession, campaign: Campaign) -> CampaignStats:
    repo = CampaignRepository(session)
    events = await repo.event_counts(campaign.id)
    return CampaignStats(
        campaign_id=campaign.id,
        status=CampaignStatus(campaign.status),
        send_at=as_utc(campaign.send_at),
        sent=await repo.sent_count(campaign.id),
        received=events.get("received", 0),
        clicked=events.get("clicked", 0),
        closed=events.get("closed", 0),
        capped=await repo.capped_count(campaign.id),
        picture_warnings=list(campaign.picture_warnings or []),
    )


async def create_segment(
    session: AsyncSession, app: App, name: str, terms: tuple[SegmentTerm, ...]
) -> Segment:
    if not 1 <= len(name) <= 255:
        raise errors.InvalidField("name must be 1-255 characters", field="name")
    if not storable(name):
        raise errors.InvalidField("name must be 1-255 characters without NUL characters", field="name")
    if await CampaignRepository(session).segment_named(app.id, name) is not None:
        raise errors.InvalidField(f"A segment named {name!r} exists already", field="name")
    await _resolve_terms(session, app, terms, "tags_segment")
    segment = Segment(
        app_id=app.id,
        name=name,
        tags_segment=[{"association": t.association, "name": t.name} for t in terms],
    )
    return await CampaignRepository(session).add_segment(segment)


# A failure's class is the start of its reason, before the first colon: "HTTP 400", "Unregistered",
# "cannot request this endpoint"; the rest is the push service's own text, which varies per recipient.
REASON_CLASS_CHARS = 60
FOLDED_REASON = "folded by retention"


def reason_class(reason: str | None) -> str:
    if not reason:
        return "unknown"
    return reason.split(":", 1)[0].strip()[:REASON_CLASS_CHARS] or "unknown"


async def history(
    session: AsyncSession,
    app: App,
    before_id: int | None,
    limit: int,
    *,
    transactional: bool = False,
    push_tag: str | None = None,
) -> list[Campaign]:
    """The app's campaigns, newest first; transactional ones (and Push API batches) only if asked;
    with `push_tag`, those sent with that push tag only."""
    return await CampaignReportRepository(session).page(
        app.id, before_id, limit, transactional=transactional, push_tag=push_tag
    )


async def get(session: AsyncSession, app: App, campaign_id: int) -> Campaign:
    campaign = await CampaignRepository(session).get(app.id, campaign_id)
    if campaign is None:
        raise errors.NotFound(f"There is no campaign {campaign_id} in this app", field="campaign_id")
    return campaign


async def variant_funnel(session: AsyncSession, campaign: Campaign) -> list[dict[str, Any]] | None:
    """An A/B campaign's funnel per group (campaign/variants.py); None for a campaign without variants."""
    if campaign.variants is None:
        return None
    reports = CampaignReportRepository(session)
    return variants.funnel_rows(
        [v["percent"] for v in campaign.variants],
        campaign.holdout_percent or 0,
        campaign.winner_after_s is not None,
        await reports.variant_ledger(campaign.id),
        await reports.variant_events(campaign.id),
    )


async def pause_scheduled(session: AsyncSession, app: App, campaign_id: int) -> Campaign:
    """Hold a campaign that has not started: the scheduler does not claim it until it is resumed.
    One already claimed (sending), paused or finished answers `campaign_not_sending`."""
    campaign = await get(session, app, campaign_id)
    moved = CampaignStatus.SCHEDULED, CampaignStatus.PAUSED
    if not await CampaignRepository(session).change_status(app.id, campaign_id, *moved):
        raise errors.CampaignNotSending()
    return campaign


async def resume_scheduled(session: AsyncSession, app: App, campaign_id: int) -> Campaign:
    """A paused campaign is scheduled again, at its own send_at: if that passed while it was paused,
    the scheduler's next tick starts it."""
    campaign = await get(session, app, campaign_id)
    moved = CampaignStatus.PAUSED, CampaignStatus.SCHEDULED
    if not await CampaignRepository(session).change_status(app.id, campaign_id, *moved):
        raise errors.CampaignNotPaused()
    return campaign


async def funnel(session: AsyncSession, campaign: Campaign) -> Funnel:
    counts: Counter[str] = Counter()
    failed_by: Counter[str] = Counter()
    for status, reason, n in await CampaignReportRepository(session).ledger(campaign.id):
        if status == DeliveryStatus.EXPIRED and reason == HOLDOUT_REASON:
            continue  # an A/B holdout: never meant to be sent (its figures: variant_funnel)
        if status == DeliveryStatus.EXPIRED and reason == CANCELLED_REASON:
            status = "cancelled"
        elif status in (DeliveryStatus.REJECTED, DeliveryStatus.FAILED):
            failed_by[reason_class(reason)] += n
        counts[status] += n
    folded_failed = campaign.folded_rejected + campaign.folded_failed
    if folded_failed:
        failed_by[FOLDED_REASON] += folded_failed
    events = await CampaignRepository(session).event_counts(campaign.id)
    return Funnel(
        audience=sum(counts.values())
        + folded_failed
        + campaign.folded_sent
        + campaign.folded_gone
        + campaign.folded_expired
        + campaign.folded_capped,
        pending=counts[DeliveryStatus.PENDING],
        sent=counts[DeliveryStatus.SENT] + campaign.folded_sent,
        failed=sum(failed_by.values()),
        failed_by_reason=dict(failed_by.most_common()),
        gone=counts[DeliveryStatus.GONE] + campaign.folded_gone,
        expired=counts[DeliveryStatus.EXPIRED] + campaign.folded_expired,
        cancelled=counts["cancelled"],
        capped=counts[DeliveryStatus.CAPPED] + campaign.folded_capped,
        received=events.get("received", 0),
        clicked=events.get("clicked", 0),
        closed=events.get("closed", 0),
    )


async def outcomes(
    session: AsyncSession,
    campaign: Campaign,
    after_id: int | None,
    limit: int,
    *,
    status: str | None = None,
    reason: str | None = None,
    min_attempts: int | None = None,
) -> list[tuple[int, str, str, str, int, str | None, int | None, datetime]]:
    """The campaign's recipients and what became of each, in ledger order (`status` "cancelled": the
    rows its cancel ended)."""
    if status == "cancelled":
        status, reason = DeliveryStatus.EXPIRED, CANCELLED_REASON
    return await CampaignReportRepository(session).outcomes(
        campaign.id, after_id, limit, status=status, reason=reason, min_attempts=min_attempts
    )


async def series(session: AsyncSession, campaign: Campaign, bucket_s: int) -> list[tuple[int, str, int]]:
    """(bucket start, kind, count) of sends and engagement, `bucket_s` seconds a bucket."""
    return await CampaignReportRepository(session).series(campaign.id, bucket_s)


async def dry_run(session: AsyncSession, app: App, spec: AudienceSpec) -> dict[str, int]:
    """Active recipients per platform that a campaign to `spec` would have now, without sending:
    the audience is resolved by the rules a campaign's is (segments and tag names must exist)."""
    stored, targets = await _audience(session, app, spec)
    tag_ids: list[int] = []
    if stored["kind"] == "tags":
        tag_ids = [tag.id for tag in await CampaignRepository(session).tags_by_names(app.id, targets)]
    condition = recipients(app.id, 0, stored, PLATFORMS, tag_ids, targets)
    found = await AudienceRepository(session).count_by_platform(condition)
    return {
        platform: found.get(platform, 0)
        for platform in PLATFORMS
        if platform in (spec.platforms or PLATFORMS)
    }


async def find_segment(session: AsyncSession, app: App, reference: str | int) -> Segment | None:
    """A segment named in a push: a JSON number is an id; a string is a name, or, when no segment of
    the app has that name and it is all digits, an id. A name always wins, so a segment named "5" is
    never mistaken for segment 5 (send `5`, the number, for that one)."""
    repo = CampaignRepository(session)
    if isinstance(reference, str):
        named = await repo.segment_named(app.id, reference)
        if named is not None:
            return named
        reference = ascii_int(reference) or 0
    in_range = 0 < reference <= MAX_ID
    return await repo.segment_by_id(app.id, reference) if in_range else None


async def get_segment(session: AsyncSession, app: App, segment_id: int) -> Segment:
    segment = await CampaignRepository(session).segment_by_id(app.id, segment_id)
    if segment is None:
        raise errors.NotFound(f"There is no segment {segment_id} in this app", field="segment_id")
    return segment


async def segments(session: AsyncSession, app: App, after_id: int, limit: int) -> list[Segment]:
    return await CampaignRepository(session).segments_page(app.id, after_id, limit)


async def delete_segment(session: AsyncSession, app: App, segment_id: int) -> None:
    await CampaignRepository(session).delete_segment(await get_segment(session, app, segment_id))


async def segment_size(session: AsyncSession, app: App, segment: Segment) -> dict[str, int]:
    """Active subscribers per platform that the segment selects now: what a push to it would reach."""
    return await dry_run(session, app, AudienceSpec(segment=segment.id))

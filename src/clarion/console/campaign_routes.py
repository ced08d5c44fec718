"""Thin handlers for a site's campaigns: compose, history, a campaign's page, segments, Push API campaigns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from clarion import errors
from clarion.campaign import follow_up
from clarion.campaign import service as campaigns
from clarion.console import compose, pages, service
from clarion.console.service import SignedIn
from clarion.console.web import FormDep, MeDep, site_page
from clarion.console.web import site as _site
from clarion.delivery import cancel, pause
from clarion.gravitec import push_body
from clarion.models import App, Campaign
from clarion.runtime import RuntimeDep, SessionDep, wake_scheduler_after_commit
from clarion.subscriber import service as subscribers
from clarion.subscriber import transfer
from clarion.subscriber.schemas import SubscriberFilter
from clarion.swrve import campaigns as push_api
from clarion.swrve import report as swrve_report
from clarion.validation import MAX_ID, PathId

router = APIRouter(prefix="/console", include_in_schema=False)


def _compose_page(
    request: Request, me: SignedIn, site: App, segments: Any, status: int = 200, **extra: Any
) -> HTMLResponse:
    values = extra.pop("values", {"audience": "all", "tag_match": "OR", "ttl": str(push_body.DEFAULT_TTL_S)})
    errors_by_field = extra.pop("field_errors", {})
    return site_page(
        request,
        me,
        site,
        "compose",
        status,
        segments=segments,
        platforms=compose.PLATFORM_LABELS,
        values=values,
        field_errors=errors_by_field,
        **extra,
    )


@router.get("/sites/{app_key}/compose")
async def compose_page(request: Request, app_key: str, session: SessionDep, me: MeDep) -> HTMLResponse:
    service.require(me.operator.role, "edit")
    site = await _site(session, app_key)
    return _compose_page(request, me, site, await pages.segments(session, site))


@router.post("/sites/{app_key}/compose/count")
async def count(app_key: str, session: SessionDep, me: MeDep, form: FormDep) -> JSONResponse:
    """The recipient count of the form's audience (a dry run), for the compose page's script."""
    site = await _site(session, app_key)
    try:
        audience = compose.parse_audience(form)
        n = await pages.recipient_count(session, site, audience)
    except errors.InvalidField as invalid:
        return JSONResponse({"error": invalid.message, "field": compose.input_of(invalid.field)}, 422)
    return JSONResponse({"count": n})


@router.post("/sites/{app_key}/compose")
async def send(request: Request, app_key: str, session: SessionDep, me: MeDep, form: FormDep) -> Response:
    service.require(me.operator.role, "edit")
    site = await _site(session, app_key)
    try:
        if form.get("action") == "count":
            recipients = await pages.recipient_count(session, site, compose.parse_audience(form))
            return _compose_page(
                request, me, site, await pages.segments(session, site), values=form, count=recipients
            )
        # The console is not the API: its campaigns do not count toward the free plan's API quota.
        campaign = await campaigns.create(session, site, compose.parse(form), api_quota=False)
    except errors.InvalidField as invalid:
        field_errors = {compose.input_of(invalid.field): invalid.message}
        segments = await pages.segments(session, site)
        return _compose_page(request, me, site, segments, 422, values=form, field_errors=field_errors)
    wake_scheduler_after_commit(session)
    return RedirectResponse(f"/console/sites/{app_key}/campaigns/{campaign.id}", status_code=303)


@router.get("/sites/{app_key}/campaigns")
async def history(
    request: Request,
    app_key: str,
    session: SessionDep,
    me: MeDep,
    transactional: bool = False,
    push_tag: Annotated[str, Query(max_length=255)] = "",
) -> HTMLResponse:
    site = await _site(session, app_key)
    rows = await pages.history(session, site, transactional=transactional, push_tag=push_tag)
    return site_page(
        request, me, site, "campaigns", rows=rows, transactional=transactional, push_tag=push_tag
    )


@router.get("/sites/{app_key}/campaigns/{campaign_id}")
async def campaign(
    request: Request,
    app_key: str,
    campaign_id: PathId,
    session: SessionDep,
    me: MeDep,
    status: str = "",
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
) -> HTMLResponse:
    site = await _site(session, app_key)
    found = await campaigns.get(session, site, campaign_id)
    return await _campaign_page(request, session, me, site, found, status=status, after=after)


async def _campaign_page(
    request: Request,
    session: SessionDep,
    me: SignedIn,
    site: App,
    found: Campaign,
    code: int = 200,
    *,
    status: str = "",
    after: int | None = None,
    **extra: Any,
) -> HTMLResponse:
    return site_page(
        request,
        me,
        site,
        "campaign",
        code,
        campaign=found,
        counters=await pages.counters(session, found),
        outcomes=await pages.outcomes(session, found, status, after),
        statuses=pages.OUTCOME_STATUSES,
        series=await pages.series(session, found),
        follow_ups=await follow_up.of(session, found),
        variant_groups=await campaigns.variant_funnel(session, found),
        **extra,
    )


@router.post("/sites/{app_key}/campaigns/{campaign_id}/update")
async def update_campaign(
    request: Request, app_key: str, campaign_id: PathId, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    """The campaign page's update form: new content for everyone the campaign reached (docs/follow-ups.md)."""
    service.require(me.operator.role, "edit")
    site = await _site(session, app_key)
    try:
        made = await follow_up.update(session, site, campaign_id, compose.parse_content(form))
    except errors.InvalidField as invalid:
        found = await campaigns.get(session, site, campaign_id)
        problem = {compose.input_of(invalid.field): invalid.message}
        return await _campaign_page(
            request, session, me, site, found, 422, update_errors=problem, values=form
        )
    wake_scheduler_after_commit(session)
    return RedirectResponse(f"/console/sites/{app_key}/campaigns/{made.id}", status_code=303)


@router.post("/sites/{app_key}/campaigns/{campaign_id}/retract")
async def retract_campaign(
    app_key: str, campaign_id: PathId, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    service.require(me.operator.role, "edit")
    made = await follow_up.retract(session, await _site(session, app_key), campaign_id)
    wake_scheduler_after_commit(session)
    return RedirectResponse(f"/console/sites/{app_key}/campaigns/{made.id}", status_code=303)


@router.get("/sites/{app_key}/campaigns/{campaign_id}/series")
async def campaign_series(app_key: str, campaign_id: PathId, session: SessionDep, me: MeDep) -> JSONResponse:
    """The time series the campaign page's chart draws (and redraws while it is open)."""
    found = await campaigns.get(session, await _site(session, app_key), campaign_id)
    return JSONResponse(await pages.series(session, found), headers={"Cache-Control": "no-store"})


@router.post("/sites/{app_key}/campaigns/{campaign_id}/cancel")
async def cancel_campaign(
    request: Request, app_key: str, campaign_id: PathId, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    service.require(me.operator.role, "edit")
    await cancel.cancel(session, await _site(session, app_key), campaign_id)
    return RedirectResponse(f"/console/sites/{app_key}/campaigns/{campaign_id}", status_code=303)


@router.post("/sites/{app_key}/campaigns/{campaign_id}/pause")
async def pause_campaign(
    request: Request, app_key: str, campaign_id: PathId, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    service.require(me.operator.role, "edit")
    await pause.pause(session, await _site(session, app_key), campaign_id)
    return RedirectResponse(f"/console/sites/{app_key}/campaigns/{campaign_id}", status_code=303)


@router.post("/sites/{app_key}/campaigns/{campaign_id}/resume")
async def resume_campaign(
    request: Request, app_key: str, campaign_id: PathId, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    service.require(me.operator.role, "edit")
    await pause.resume(session, await _site(session, app_key), campaign_id)
    return RedirectResponse(f"/console/sites/{app_key}/campaigns/{campaign_id}", status_code=303)


@router.get("/sites/{app_key}/campaigns/{campaign_id}/counters")
async def campaign_counters(
    app_key: str, campaign_id: PathId, session: SessionDep, me: MeDep
) -> JSONResponse:
    found = await campaigns.get(session, await _site(session, app_key), campaign_id)
    return JSONResponse(await pages.counters(session, found), headers={"Cache-Control": "no-store"})


SEGMENT_LINES = 4


async def _segments_page(
    request: Request, session: SessionDep, me: SignedIn, site: App, status: int = 200, **extra: Any
) -> HTMLResponse:
    rows = await pages.segment_sizes(session, site)
    values = extra.pop("values", {})
    return site_page(request, me, site, "segments", status, rows=rows, values=values, **extra)


@router.get("/sites/{app_key}/segments")
async def segments(request: Request, app_key: str, session: SessionDep, me: MeDep) -> HTMLResponse:
    return await _segments_page(request, session, me, await _site(session, app_key))


@router.post("/sites/{app_key}/segments")
async def create_segment(
    request: Request, app_key: str, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    service.require(me.operator.role, "edit")
    site = await _site(session, app_key)
    lines = [
        (form.get(f"association-{i}", ""), form.get(f"tag-{i}", "").strip()) for i in range(SEGMENT_LINES)
    ]
    raw = [{"association": association, "name": name} for association, name in lines if name]
    try:
        terms = push_body.parse_terms(raw, "tags_segment")
        await campaigns.create_segment(session, site, form.get("name", "").strip(), terms)
    except errors.InvalidField as invalid:
        return await _segments_page(request, session, me, site, 422, values=form, error=invalid.message)
    return RedirectResponse(f"/console/sites/{app_key}/segments", status_code=303)


@router.post("/sites/{app_key}/segments/{segment_id}/delete")
async def delete_segment(
    app_key: str, segment_id: PathId, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    service.require(me.operator.role, "edit")
    await campaigns.delete_segment(session, await _site(session, app_key), segment_id)
    return RedirectResponse(f"/console/sites/{app_key}/segments", status_code=303)


async def _push_campaigns_page(
    request: Request, session: SessionDep, me: SignedIn, site: App, status: int = 200, **extra: Any
) -> HTMLResponse:
    rows = [
        (push, await swrve_report.counters(session, push.id, app=site))
        for push in await pages.push_campaigns(session, site)
    ]
    values = extra.pop("values", {})
    return site_page(
        request,
        me,
        site,
        "push_campaigns",
        status,
        rows=rows,
        values=values,
        platforms=push_api.PLATFORMS,
        **extra,
    )


@router.get("/sites/{app_key}/push-campaigns")
async def push_campaigns(request: Request, app_key: str, session: SessionDep, me: MeDep) -> HTMLResponse:
    return await _push_campaigns_page(request, session, me, await _site(session, app_key))


@router.post("/sites/{app_key}/push-campaigns")
async def create_push_campaign(
    request: Request, app_key: str, session: SessionDep, me: MeDep, form: FormDep
) -> HTMLResponse:
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    name = form.get("name", "").strip()
    try:
        _, push_key = await push_api.create_push_campaign(
            session,
            app_key,
            name,
            form.get("message") or None,
            form.get("title") or None,
            form.get("platform", ""),
        )
    except errors.InvalidField as invalid:
        return await _push_campaigns_page(request, session, me, site, 422, values=form, error=invalid.message)
    return await _push_campaigns_page(request, session, me, site, push_key=push_key, push_key_for=name)


BATCHES_SHOWN = 20


@router.get("/sites/{app_key}/push-campaigns/{push_campaign_id}")
async def push_campaign_page(
    request: Request,
    app_key: str,
    push_campaign_id: PathId,
    session: SessionDep,
    me: MeDep,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    """One Push API campaign: its counters, and its batches (newest first) each with its report:
    status, counts, and the per-user warnings and failures (swrve.report.status, as /push_batch's)."""
    site = await _site(session, app_key)
    push = await push_api.get_push_campaign(session, site, push_campaign_id)
    found = await push_api.batches(session, site, push.id, offset, BATCHES_SHOWN + 1)
    batches = [
        (batch, await swrve_report.status(session, batch.id, app=site)) for batch in found[:BATCHES_SHOWN]
    ]
    return site_page(
        request,
        me,
        site,
        "push_campaign",
        push=push,
        counters=await swrve_report.counters(session, push.id, app=site),
        batches=batches,
        offset=offset,
        more=len(found) > BATCHES_SHOWN,
        shown=BATCHES_SHOWN,
    )


@router.post("/sites/{app_key}/push-campaigns/{push_campaign_id}/rotate-key")
async def rotate_push_key(
    request: Request, app_key: str, push_campaign_id: PathId, session: SessionDep, me: MeDep, form: FormDep
) -> HTMLResponse:
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    push_key = await push_api.rotate_push_key(session, site, push_campaign_id)
    named = await push_api.get_push_campaign(session, site, push_campaign_id)
    return await _push_campaigns_page(request, session, me, site, push_key=push_key, push_key_for=named.name)


SUBSCRIBERS_SHOWN = 50
# The campaigns a subscriber's page looks through for those it received.
RECEIVED_LOOKED_AT = 100
UPLOAD_BLOCK_BYTES = 64 * 1024
GROWTH_DAYS = 30


async def _subscribers_page(
    request: Request,
    session: SessionDep,
    me: SignedIn,
    site: App,
    q: str = "",
    status: int = 200,
    **extra: Any,
) -> HTMLResponse:
    found = await subscribers.search(session, site, q, SUBSCRIBERS_SHOWN)
    counts = pages.platform_breakdown(await subscribers.platform_counts(session, site))
    return site_page(
        request,
        me,
        site,
        "subscribers",
        status,
        rows=found,
        q=q,
        counts=counts,
        shown=SUBSCRIBERS_SHOWN,
        formats=transfer.FORMATS,
        growth=await subscribers.growth(session, site, GROWTH_DAYS),
        **extra,
    )


@router.get("/sites/{app_key}/subscribers")
async def subscribers_page(
    request: Request, app_key: str, session: SessionDep, me: MeDep, q: str = ""
) -> HTMLResponse:
    return await _subscribers_page(request, session, me, await _site(session, app_key), q)


async def _blocks(upload: Any) -> AsyncIterator[bytes]:
    while block := await upload.read(UPLOAD_BLOCK_BYTES):
        yield block


@router.post("/sites/{app_key}/subscribers/import")
async def import_subscribers(
    request: Request, app_key: str, session: SessionDep, me: MeDep, form: FormDep, rt: RuntimeDep
) -> HTMLResponse:
    """An NDJSON or CSV file imported by subscriber.transfer, as /v1's import and the CLI's do."""
    service.require(me.operator.role, "edit")
    site = await _site(session, app_key)
    upload = request.state.uploads.get("file")
    try:
        fmt = transfer.check_format(form.get("format", ""))
        if upload is None or not upload.filename:
            raise errors.InvalidField("file: choose the file to import", field="file")
        async with transfer.bulk_database(rt.settings) as db:
            report = await transfer.import_subscribers(
                db, site, _blocks(upload), fmt, rt.settings.push_host_set()
            )
    except errors.InvalidField as invalid:
        return await _subscribers_page(request, session, me, site, status=422, error=invalid.message)
    return await _subscribers_page(request, session, me, site, report=report.as_dict())


@router.get("/sites/{app_key}/subscribers/export")
async def export_subscribers(
    app_key: str, session: SessionDep, me: MeDep, rt: RuntimeDep, format: str = "ndjson"
) -> StreamingResponse:
    """Every subscriber of the site, with endpoints, tokens and keys (admins only): subscriber.transfer's
    export, as /v1's and the CLI's."""
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    transfer.check_format(format)

    async def body() -> AsyncIterator[bytes]:
        async with transfer.bulk_database(rt.settings) as db:
            async for piece in transfer.export_subscribers(db, site, format, SubscriberFilter()):
                yield piece

    headers = {"Content-Disposition": f'attachment; filename="subscribers.{format}"'}
    return StreamingResponse(body(), media_type=transfer.MEDIA_TYPES[format], headers=headers)


@router.get("/sites/{app_key}/subscribers/growth")
async def subscriber_growth(app_key: str, session: SessionDep, me: MeDep) -> JSONResponse:
    """New subscribers per day (the subscribers page's chart)."""
    growth = await subscribers.growth(session, await _site(session, app_key), GROWTH_DAYS)
    points = [{"at": day, "new": n} for day, n in growth]
    return JSONResponse({"points": points}, headers={"Cache-Control": "no-store"})


@router.get("/sites/{app_key}/subscribers/{reg_id}")
async def subscriber_page(
    request: Request, app_key: str, reg_id: str, session: SessionDep, me: MeDep
) -> HTMLResponse:
    site = await _site(session, app_key)
    shown = await subscribers.show(session, site, reg_id)
    received = await subscribers.received(session, site, shown.subscriber, RECEIVED_LOOKED_AT)
    return site_page(
        request, me, site, "subscriber", shown=shown, received=received, looked_at=RECEIVED_LOOKED_AT
    )

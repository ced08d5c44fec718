"""Thin handlers for /console/: parse the form, call the feature's service, render the page."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from clarion import errors
from clarion.app_tenant import service as apps
from clarion.campaign import service as campaigns
from clarion.campaign.schemas import AudienceSpec
from clarion.console import compose, pages, service
from clarion.console.service import SignedIn, SignInThrottle
from clarion.gravitec import push_body
from clarion.models import App
from clarion.runtime import SessionDep, wake_scheduler_after_commit
from clarion.subscriber.schemas import NATIVE_PLATFORMS
from clarion.swrve import campaigns as push_api
from clarion.swrve import report as swrve_report
from clarion.validation import PathId

HERE = Path(__file__).parent
SESSION_COOKIE = "clarion_console"
SIGN_IN_CSRF_COOKIE = "clarion_console_csrf"  # double-submit token of the sign-in form (no session yet)
PLATFORMS = ("web", *NATIVE_PLATFORMS)
SETTINGS_TABS = {
    "general": "General",
    "rest-api": "REST API",
    "integration": "Integration",
    "danger": "Danger zone",
}
# Pages are the server's own: no inline script or style, no framing, nothing cached.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' https: data:; frame-ancestors 'none';"
    " base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/console", include_in_schema=False)


class SignInRequired(Exception):
    """No session (or an expired one): the browser is sent to the sign-in page."""


def mount(app: FastAPI) -> None:
    """Add the console to the app: its routes, its static files, its templates and its throttle."""
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["may"] = service.may
    templates.env.globals["tabs"] = SETTINGS_TABS
    templates.env.globals["field_error"] = field_error
    app.state.console_templates = templates
    app.state.sign_in_throttle = SignInThrottle()
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(router)
    app.add_exception_handler(SignInRequired, _to_sign_in)


async def _to_sign_in(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/console/sign-in", status_code=303)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.console_templates
    response = templates.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(HEADERS)
    return response


def site_page(
    request: Request, me: SignedIn, site: App, page: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page of one site (`page`.html), under the site's navigation (a campaign's page under Campaigns)."""
    section = "campaigns" if page == "campaign" else page
    return render(request, f"{page}.html", status, me=me, site=site, section=section, **context)


def error_page(request: Request, error: errors.ClarionError) -> HTMLResponse:
    """Any error on a console path, as a page (app.error_response's renderer for /console)."""
    return render(request, "error.html", error.status, error=error, me=None)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _set_cookie(
    request: Request, response: Response, name: str, value: str, same_site: Literal["lax", "strict"]
) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite=same_site,
        secure=_secure(request),
        path="/console",
    )


async def signed_in(request: Request, session: SessionDep) -> SignedIn:
    found = await service.current(session, request.cookies.get(SESSION_COOKIE, ""))
    if found is None:
        raise SignInRequired()
    return found


MeDep = Annotated[SignedIn, Depends(signed_in)]


async def posted(request: Request, me: MeDep) -> dict[str, str]:
    """A signed-in form's fields, once its CSRF token matched the session's."""
    form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
    service.check_csrf(me.csrf_token, form.get("csrf_token"))
    return form


FormDep = Annotated[dict[str, str], Depends(posted)]


@router.get("/")
async def home(me: MeDep) -> Response:
    return RedirectResponse("/console/sites", status_code=303)


@router.get("/sign-in")
async def sign_in_page(request: Request, session: SessionDep) -> Response:
    if await service.current(session, request.cookies.get(SESSION_COOKIE, "")) is not None:
        return RedirectResponse("/console/sites", status_code=303)
    return _sign_in_form(request)


def _sign_in_form(request: Request, status: int = 200, email: str = "", error: str = "") -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = render(request, "sign_in.html", status, me=None, csrf=token, email=email, error=error)
    _set_cookie(request, response, SIGN_IN_CSRF_COOKIE, token, "strict")
    return response


@router.post("/sign-in")
async def sign_in(request: Request, session: SessionDep) -> Response:
    form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
    service.check_csrf(request.cookies.get(SIGN_IN_CSRF_COOKIE, ""), form.get("csrf_token"))
    email = form.get("email", "")
    try:
        signed = await service.sign_in(
            session, request.app.state.sign_in_throttle, email, form.get("password", "")
        )
    except (errors.SignInFailed, errors.SignInThrottled) as refused:
        page = _sign_in_form(request, refused.status, email, refused.message)
        if isinstance(refused, errors.SignInThrottled):
            page.headers["Retry-After"] = str(refused.retry_after_s)
        return page
    response = RedirectResponse("/console/sites", status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, signed.token, "lax")
    response.delete_cookie(SIGN_IN_CSRF_COOKIE, path="/console")
    return response


@router.post("/sign-out")
async def sign_out(session: SessionDep, me: MeDep, form: FormDep) -> Response:
    await service.sign_out(session, me.token)
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.get("/sites")
async def sites(request: Request, session: SessionDep, me: MeDep) -> HTMLResponse:
    return render(request, "sites.html", me=me, rows=await pages.sites(session))


@router.post("/sites")
async def create_site(request: Request, session: SessionDep, me: MeDep, form: FormDep) -> Response:
    service.require(me.operator.role, "manage")
    try:
        created = await apps.create(session, form.get("name", "").strip())
    except errors.InvalidField as invalid:
        rows = await pages.sites(session)
        return render(
            request, "sites.html", 422, me=me, rows=rows, error=invalid.message, name=form.get("name")
        )
    site = await apps.by_key(session, created.app_key)
    return await _settings(request, session, me, site, "rest-api", secret=created.app_secret, created=True)


async def _site(session: SessionDep, app_key: str) -> App:
    return await apps.by_key(session, app_key)


async def _settings(
    request: Request, session: SessionDep, me: SignedIn, site: App, tab: str, status: int = 200, **extra: Any
) -> HTMLResponse:
    identity = apps.identity_key(session, site) if tab == "integration" else None
    base = str(request.base_url).rstrip("/")
    return site_page(
        request, me, site, "settings", status, tab=tab, base=base, identity_key=identity, **extra
    )


@router.get("/sites/{app_key}")
async def site_home(app_key: str, me: MeDep) -> Response:
    return RedirectResponse(f"/console/sites/{app_key}/campaigns", status_code=303)


@router.get("/sites/{app_key}/settings")
async def settings_home(app_key: str, me: MeDep) -> Response:
    return RedirectResponse(f"/console/sites/{app_key}/settings/general", status_code=303)


@router.get("/sites/{app_key}/settings/{tab}")
async def settings(request: Request, app_key: str, tab: str, session: SessionDep, me: MeDep) -> HTMLResponse:
    if tab not in SETTINGS_TABS:
        raise errors.NotFound(f"There is no settings tab {tab!r}")
    return await _settings(request, session, me, await _site(session, app_key), tab)


@router.post("/sites/{app_key}/settings/general")
async def rename(request: Request, app_key: str, session: SessionDep, me: MeDep, form: FormDep) -> Response:
    service.require(me.operator.role, "edit")
    try:
        await apps.update(session, app_key, name=form.get("name", "").strip())
    except errors.InvalidField as invalid:
        site = await _site(session, app_key)
        return await _settings(request, session, me, site, "general", 422, error=invalid.message)
    return RedirectResponse(f"/console/sites/{app_key}/settings/general?saved=1", status_code=303)


@router.post("/sites/{app_key}/rotate-secret")
async def rotate_secret(
    request: Request, app_key: str, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    service.require(me.operator.role, "manage")
    secret = await apps.rotate_secret(session, app_key)
    return await _settings(request, session, me, await _site(session, app_key), "rest-api", secret=secret)


@router.post("/sites/{app_key}/delete")
async def delete_site(
    request: Request, app_key: str, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    if form.get("confirm_name", "") != site.name:
        error = "Type the site's name exactly to confirm its deletion"
        return await _settings(request, session, me, site, "danger", 422, error=error)
    await apps.delete(session, app_key)
    return RedirectResponse("/console/sites?deleted=1", status_code=303)


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
        values=values,
        field_errors=errors_by_field,
        **extra,
    )


@router.get("/sites/{app_key}/compose")
async def compose_page(request: Request, app_key: str, session: SessionDep, me: MeDep) -> HTMLResponse:
    service.require(me.operator.role, "edit")
    site = await _site(session, app_key)
    return _compose_page(request, me, site, await campaigns.segments(session, site))


@router.post("/sites/{app_key}/compose/count")
async def count(app_key: str, session: SessionDep, me: MeDep, form: FormDep) -> JSONResponse:
    """The recipient count of the form's audience (a dry run), for the compose page's script."""
    site = await _site(session, app_key)
    try:
        audience = compose.parse_audience(form)
        n = await campaigns.count_recipients(session, site, audience, PLATFORMS)
    except errors.InvalidField as invalid:
        return JSONResponse({"error": invalid.message, "field": compose.input_of(invalid.field)}, 422)
    return JSONResponse({"count": n})


@router.post("/sites/{app_key}/compose")
async def send(request: Request, app_key: str, session: SessionDep, me: MeDep, form: FormDep) -> Response:
    service.require(me.operator.role, "edit")
    site = await _site(session, app_key)
    try:
        if form.get("action") == "count":
            recipients = await campaigns.count_recipients(
                session, site, compose.parse_audience(form), PLATFORMS
            )
            return _compose_page(
                request, me, site, await campaigns.segments(session, site), values=form, count=recipients
            )
        # The console is not the API: its campaigns do not count toward the free plan's API quota.
        campaign = await campaigns.create(session, site, compose.parse(form), api_quota=False)
    except errors.InvalidField as invalid:
        field_errors = {compose.input_of(invalid.field): invalid.message}
        segments = await campaigns.segments(session, site)
        return _compose_page(request, me, site, segments, 422, values=form, field_errors=field_errors)
    wake_scheduler_after_commit(session)
    return RedirectResponse(f"/console/sites/{app_key}/campaigns/{campaign.id}", status_code=303)


@router.get("/sites/{app_key}/campaigns")
async def history(
    request: Request, app_key: str, session: SessionDep, me: MeDep, transactional: bool = False
) -> HTMLResponse:
    site = await _site(session, app_key)
    rows = await pages.history(session, site, transactional=transactional)
    return site_page(request, me, site, "campaigns", rows=rows, transactional=transactional)


@router.get("/sites/{app_key}/campaigns/{campaign_id}")
async def campaign(
    request: Request, app_key: str, campaign_id: PathId, session: SessionDep, me: MeDep
) -> HTMLResponse:
    site = await _site(session, app_key)
    found = await campaigns.get(session, site, campaign_id)
    counters = await pages.counters(session, site, campaign_id)
    return site_page(request, me, site, "campaign", campaign=found, counters=counters)


@router.post("/sites/{app_key}/campaigns/{campaign_id}/cancel")
async def cancel_campaign(
    request: Request, app_key: str, campaign_id: PathId, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    service.require(me.operator.role, "edit")
    await campaigns.cancel(session, await _site(session, app_key), campaign_id)
    return RedirectResponse(f"/console/sites/{app_key}/campaigns/{campaign_id}", status_code=303)


@router.get("/sites/{app_key}/campaigns/{campaign_id}/counters")
async def campaign_counters(
    app_key: str, campaign_id: PathId, session: SessionDep, me: MeDep
) -> JSONResponse:
    site = await _site(session, app_key)
    return JSONResponse(
        await pages.counters(session, site, campaign_id), headers={"Cache-Control": "no-store"}
    )


def field_error(errors_by_field: dict[str, str], name: str) -> Markup:
    """The message next to an input, tied to it by aria-describedby (see compose.html)."""
    message = errors_by_field.get(name)
    if message is None:
        return Markup("")
    return Markup('<p class="field-error" id="{}-error">{}</p>').format(escape(name), message)


SEGMENT_LINES = 4


async def _segments_page(
    request: Request, session: SessionDep, me: SignedIn, site: App, status: int = 200, **extra: Any
) -> HTMLResponse:
    rows = [
        (
            segment,
            await campaigns.count_recipients(session, site, AudienceSpec(segment=str(segment.id)), PLATFORMS),
        )
        for segment in await campaigns.segments(session, site)
    ]
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
        (push, await swrve_report.counters(session, push.id))
        for push in await push_api.push_campaigns(session, site)
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


@router.post("/sites/{app_key}/push-campaigns/{push_campaign_id}/rotate-key")
async def rotate_push_key(
    request: Request, app_key: str, push_campaign_id: PathId, session: SessionDep, me: MeDep, form: FormDep
) -> HTMLResponse:
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    push_key = await push_api.rotate_push_key(session, site, push_campaign_id)
    named = {push.id: push.name for push in await push_api.push_campaigns(session, site)}
    return await _push_campaigns_page(
        request, session, me, site, push_key=push_key, push_key_for=named[push_campaign_id]
    )


async def _operators_page(
    request: Request, session: SessionDep, me: SignedIn, status: int = 200, **extra: Any
) -> HTMLResponse:
    service.require(me.operator.role, "manage")
    rows = await service.operators(session)
    values = extra.pop("values", {"role": "editor"})
    return render(
        request, "operators.html", status, me=me, rows=rows, roles=service.ROLES, values=values, **extra
    )


@router.get("/operators")
async def operators(request: Request, session: SessionDep, me: MeDep) -> HTMLResponse:
    return await _operators_page(request, session, me)


@router.post("/operators")
async def create_operator(request: Request, session: SessionDep, me: MeDep, form: FormDep) -> Response:
    service.require(me.operator.role, "manage")
    try:
        await service.create_operator(
            session, form.get("email", ""), form.get("role", ""), form.get("password", "")
        )
    except errors.InvalidField as invalid:
        values = {"email": form.get("email", ""), "role": form.get("role", "")}
        return await _operators_page(request, session, me, 422, values=values, error=invalid.message)
    return RedirectResponse("/console/operators", status_code=303)


@router.post("/operators/{operator_id}/delete")
async def delete_operator(
    request: Request, operator_id: PathId, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    service.require(me.operator.role, "manage")
    try:
        await service.delete_operator(session, operator_id, me.operator)
    except errors.InvalidField as invalid:
        return await _operators_page(request, session, me, 422, error=invalid.message)
    return RedirectResponse("/console/operators", status_code=303)

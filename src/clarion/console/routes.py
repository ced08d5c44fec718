"""Thin handlers for /console/: sign-in, sites and their settings, operators; and `mount`."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from clarion import errors
from clarion.app_tenant import credentials
from clarion.app_tenant import service as apps
from clarion.campaign import service as campaigns
from clarion.console import campaign_routes, pages, providers, service, webhook_routes
from clarion.console.service import SignedIn, SignInThrottle
from clarion.console.web import (
    HERE,
    SESSION_COOKIE,
    SETTINGS_TABS,
    SIGN_IN_CSRF_COOKIE,
    FormDep,
    MeDep,
    SignInRequired,
    field_error,
    render,
    set_cookie,
    site_page,
)
from clarion.console.web import site as _site
from clarion.models import App
from clarion.runtime import RuntimeDep, SessionDep
from clarion.subscriber import service as subscribers
from clarion.validation import PathId

router = APIRouter(prefix="/console", include_in_schema=False)


def mount(app: FastAPI) -> None:
    """Add the console to the app: its routes, its static files, its templates and its throttle."""
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["may"] = service.may
    templates.env.globals["tabs"] = SETTINGS_TABS
    templates.env.globals["field_error"] = field_error
    templates.env.globals["timestamp"] = lambda seconds: datetime.fromtimestamp(seconds, UTC)
    app.state.console_templates = templates
    app.state.sign_in_throttle = SignInThrottle()
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(router)
    app.include_router(campaign_routes.router)
    app.include_router(webhook_routes.router)
    app.add_exception_handler(SignInRequired, _to_sign_in)


async def _to_sign_in(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/console/sign-in", status_code=303)


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
    set_cookie(request, response, SIGN_IN_CSRF_COOKIE, token, "strict")
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
    set_cookie(request, response, SESSION_COOKIE, signed.token, "lax")
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


async def _settings(
    request: Request, session: SessionDep, me: SignedIn, site: App, tab: str, status: int = 200, **extra: Any
) -> HTMLResponse:
    identity = apps.identity_key(session, site) if tab == "integration" else None
    if tab == "integration":
        extra.update(
            vapid=await apps.vapid_progress(session, site), vapid_failing=apps.summary(site)["vapid_failing"]
        )
    if tab == "plan":
        extra.update(plan=pages.plan(site, await campaigns.api_campaigns_today(session, site)))
    if tab == "providers":
        extra.update(
            credentials={c["provider"]: c for c in await credentials.listing(session, site)},
            titles=providers.TITLES,
            environments=providers.APNS_ENVIRONMENTS,
        )
    if tab == "webhooks":
        extra.update(await webhook_routes.context(session, site))
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
        await apps.update(
            session,
            app_key,
            name=form.get("name", "").strip(),
            site_url=form.get("site_url", "").strip(),
            default_icon=form.get("default_icon", "").strip(),
            default_timezone=form.get("default_timezone", "").strip(),
            quiet_start=form.get("quiet_start", "").strip(),
            quiet_end=form.get("quiet_end", "").strip(),
            quiet_mode=form.get("quiet_mode") or None,
            frequency_cap=_whole(form, "frequency_cap"),
            frequency_cap_period_s=_whole(form, "frequency_cap_period_h") * 3600,
        )
    except errors.InvalidField as invalid:
        site = await _site(session, app_key)
        return await _settings(request, session, me, site, "general", 422, error=invalid.message, values=form)
    return RedirectResponse(f"/console/sites/{app_key}/settings/general?saved=1", status_code=303)


def _whole(form: Mapping[str, str], name: str) -> int:
    """A form's whole number (empty: 0, which clears the frequency cap)."""
    value = form.get(name, "").strip() or "0"
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise errors.InvalidField(f"{name} must be a whole number", field=name)
    return int(value)


@router.post("/sites/{app_key}/settings/plan")
async def change_plan(
    request: Request, app_key: str, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    service.require(me.operator.role, "manage")
    try:
        await apps.update(session, app_key, plan=form.get("plan", ""))
    except errors.InvalidField as invalid:
        site = await _site(session, app_key)
        return await _settings(request, session, me, site, "plan", 422, error=invalid.message)
    return RedirectResponse(f"/console/sites/{app_key}/settings/plan?saved=1", status_code=303)


def _provider(name: str) -> str:
    if name not in providers.TITLES:
        raise errors.NotFound(f"There is no provider {name!r}")
    return name


@router.post("/sites/{app_key}/settings/providers/{provider}")
async def upload_credentials(
    request: Request, app_key: str, provider: str, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    """Store a provider's credentials (the file and fields of its form) by the credentials service."""
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    upload = request.state.uploads.get("file")
    content = await upload.read() if upload is not None else None
    try:
        data = providers.credentials_of(_provider(provider), form, content)
        await credentials.store(session, app_key, provider, data)
    except errors.InvalidField as invalid:
        return await _settings(
            request, session, me, site, "providers", 422, error=invalid.message, values=form, open=provider
        )
    return RedirectResponse(f"/console/sites/{app_key}/settings/providers?saved={provider}", status_code=303)


@router.post("/sites/{app_key}/settings/providers/{provider}/test")
async def test_credentials(
    request: Request,
    app_key: str,
    provider: str,
    session: SessionDep,
    me: MeDep,
    form: FormDep,
    rt: RuntimeDep,
) -> HTMLResponse:
    """Obtain a token (or sign one, APNs) with the stored credentials, as /v1's test does; sends nothing."""
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    failure = await credentials.test(session, rt.settings, site, _provider(provider))
    tested = {"provider": provider, "ok": failure is None, "reason": failure}
    return await _settings(request, session, me, site, "providers", tested=tested)


@router.post("/sites/{app_key}/settings/providers/{provider}/remove")
async def remove_credentials(
    app_key: str, provider: str, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    service.require(me.operator.role, "manage")
    await credentials.remove(session, await _site(session, app_key), _provider(provider))
    return RedirectResponse(f"/console/sites/{app_key}/settings/providers", status_code=303)


@router.post("/sites/{app_key}/rotate-secret")
async def rotate_secret(
    request: Request, app_key: str, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    secret = await apps.rotate_secret(session, site)
    return await _settings(request, session, me, site, "rest-api", secret=secret)


@router.post("/sites/{app_key}/rotate-vapid")
async def rotate_vapid(
    request: Request, app_key: str, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    """A new VAPID key pair; subscriptions made with the old one keep being signed with it (as /v1's)."""
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    await subscribers.rotate_vapid(session, site)
    return await _settings(request, session, me, site, "integration", rotated=True)


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

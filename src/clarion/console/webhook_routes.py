"""Thin handlers for a site's Webhooks settings tab: its webhook endpoints (add, edit the event
filter, enable or disable, rotate the secret, delete) with their delivery state, and the event feed's
switch. The event service does the work, as for /v1 (docs/webhooks.md); only admins change anything."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.console import service
from clarion.console.service import SignedIn
from clarion.console.web import FormDep, MeDep, site_page
from clarion.console.web import site as _site
from clarion.event import service as events
from clarion.event.types import EventType
from clarion.models import App
from clarion.netpolicy import AddressPolicy
from clarion.runtime import RuntimeDep, SessionDep
from clarion.validation import PathId

router = APIRouter(prefix="/console/sites/{app_key}/settings/webhooks", include_in_schema=False)

# The most endpoints the tab lists (the /v1 listing pages through any number).
SHOWN = 100
TYPES = [member.value for member in EventType]


async def context(session: AsyncSession, site: App) -> dict[str, Any]:
    """What the Webhooks tab shows: the endpoints with their delivery state, the feed's switch."""
    return {
        "endpoints": await events.endpoint_states(session, site.id, SHOWN),
        "feed_on": await events.feed_on(session, site.id),
        "event_types": TYPES,
    }


async def _page(
    request: Request, session: AsyncSession, me: SignedIn, site: App, status: int = 200, **extra: Any
) -> HTMLResponse:
    shown = await context(session, site)
    return site_page(request, me, site, "settings", status, tab="webhooks", **shown, **extra)


def _back(app_key: str, done: str) -> Response:
    return RedirectResponse(f"/console/sites/{app_key}/settings/webhooks?done={done}", status_code=303)


async def _types(request: Request) -> list[str]:
    """The ticked event types (a checkbox per type; several values of one name)."""
    return [value for value in (await request.form()).getlist("event_types") if isinstance(value, str)]


def _policy(rt: RuntimeDep) -> AddressPolicy:
    return AddressPolicy.from_settings(rt.settings.outbound_allow)


@router.post("")
async def add_endpoint(
    request: Request, app_key: str, session: SessionDep, me: MeDep, form: FormDep, rt: RuntimeDep
) -> Response:
    """A new endpoint; its secret is shown on the page this once."""
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    url, description = form.get("url", "").strip(), form.get("description", "").strip() or None
    types = await _types(request)
    try:
        created = await events.create_endpoint(session, site.id, url, types, description, True, _policy(rt))
    except errors.InvalidField as invalid:
        typed = {"url": url, "description": description or "", "event_types": types}
        return await _page(request, session, me, site, 422, error=invalid.message, typed=typed)
    return await _page(request, session, me, site, secret=created.secret, secret_of=created.endpoint.id)


@router.post("/feed")
async def switch_feed(app_key: str, session: SessionDep, me: MeDep, form: FormDep) -> Response:
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    on = form.get("enabled") == "true"
    await events.switch_feed(session, site.id, on)
    return _back(app_key, "feed-on" if on else "feed-off")


@router.post("/{webhook_id}/event-types")
async def change_types(
    request: Request,
    app_key: str,
    webhook_id: PathId,
    session: SessionDep,
    me: MeDep,
    form: FormDep,
    rt: RuntimeDep,
) -> Response:
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    changes = {"event_types": await _types(request)}
    try:
        await events.update_endpoint(session, site.id, webhook_id, changes, _policy(rt))
    except errors.InvalidField as invalid:
        return await _page(request, session, me, site, 422, error=invalid.message)
    return _back(app_key, "saved")


@router.post("/{webhook_id}/switch")
async def switch_endpoint(
    app_key: str, webhook_id: PathId, session: SessionDep, me: MeDep, form: FormDep, rt: RuntimeDep
) -> Response:
    """Enable or disable (either resets its back-off, as on /v1)."""
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    on = form.get("enabled") == "true"
    await events.update_endpoint(session, site.id, webhook_id, {"enabled": on}, _policy(rt))
    return _back(app_key, "enabled" if on else "disabled")


@router.post("/{webhook_id}/rotate-secret")
async def rotate_secret(
    request: Request, app_key: str, webhook_id: PathId, session: SessionDep, me: MeDep, form: FormDep
) -> HTMLResponse:
    """A new secret, shown once; the previous one keeps signing beside it for a day (/v1's default)."""
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    _, secret = await events.rotate_secret(session, site.id, webhook_id, events.ROTATION_DEFAULT_S)
    return await _page(request, session, me, site, secret=secret, secret_of=webhook_id, rotated=True)


@router.post("/{webhook_id}/delete")
async def delete_endpoint(
    app_key: str, webhook_id: PathId, session: SessionDep, me: MeDep, form: FormDep
) -> Response:
    service.require(me.operator.role, "manage")
    site = await _site(session, app_key)
    await events.delete_endpoint(session, site.id, webhook_id)
    return _back(app_key, "deleted")

"""What every console page shares: rendering, the signed-in operator, the CSRF-checked form, a site."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from clarion import errors
from clarion.app_tenant import service as apps
from clarion.console import service
from clarion.console.service import SignedIn
from clarion.models import App
from clarion.runtime import SessionDep

HERE = Path(__file__).parent
SESSION_COOKIE = "clarion_console"
SIGN_IN_CSRF_COOKIE = "clarion_console_csrf"  # double-submit token of the sign-in form (no session yet)
SETTINGS_TABS = {
    "general": "General",
    "rest-api": "REST API",
    "integration": "Integration",
    "providers": "Providers",
    "plan": "Plan and quotas",
    "webhooks": "Webhooks",
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


class SignInRequired(Exception):
    """No session (or an expired one): the browser is sent to the sign-in page."""


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.console_templates
    response = templates.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(HEADERS)
    return response


# A page shown under another's tab: one campaign under Campaigns, one subscriber under Subscribers.
SECTION_OF = {"campaign": "campaigns", "subscriber": "subscribers", "push_campaign": "push_campaigns"}


def site_page(
    request: Request, me: SignedIn, site: App, page: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page of one site (`page`.html), under the site's navigation (SECTION_OF)."""
    section = {"campaign": "campaigns", "subscriber": "subscribers", "push_campaign": "push_campaigns"}.get(
        page, page
    )
    return render(request, f"{page}.html", status, me=me, site=site, section=section, **context)


def error_page(request: Request, error: errors.ClarionError) -> HTMLResponse:
    """Any error on a console path, as a page (app.error_response's renderer for /console)."""
    return render(request, "error.html", error.status, error=error, me=None)


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(
    request: Request, response: Response, name: str, value: str, same_site: Literal["lax", "strict"]
) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite=same_site,
        secure=secure(request),
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
    parsed = await request.form()
    form = {key: value for key, value in parsed.items() if isinstance(value, str)}
    service.check_csrf(me.csrf_token, form.get("csrf_token"))
    request.state.uploads = {key: value for key, value in parsed.items() if not isinstance(value, str)}
    return form


FormDep = Annotated[dict[str, str], Depends(posted)]


def field_error(errors_by_field: dict[str, str], name: str) -> Markup:
    """The message next to an input, tied to it by aria-describedby (see compose.html)."""
    message = errors_by_field.get(name)
    if message is None:
        return Markup("")
    return Markup('<p class="field-error" id="{}-error">{}</p>').format(escape(name), message)


async def site(session: SessionDep, app_key: str) -> App:
    return await apps.by_key(session, app_key)

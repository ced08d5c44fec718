"""The console's pages beyond the first journey, in Chromium against a real `clarion serve`: a site's
settings (site URL and default icon, providers, plan), a campaign's outcomes and time series, and a
subscriber's page, each with axe-core and screenshots at two widths."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from PIL import Image

from tests.browser.console_support import Console, create_operator
from tests.e2e.processes import Processes, Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Route

with contextlib.suppress(ImportError):  # reported by require_browser()
    from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

ICON_URL = "https://icons.example/brand.png"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (31, 79, 209)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def admin(
    browser: Browser, server: tuple[Processes, Server], request: pytest.FixtureRequest
) -> Iterator[Console]:
    """An admin signed in, with icons.example answered by the test (no network)."""
    procs, running = server
    email = f"{request.node.name[:40].replace('_', '-')}@example.com"
    create_operator(procs, email, "admin")
    opened = Console.open(browser, running.url)
    picture = _png()

    def answer(route: Route) -> None:
        route.fulfill(status=200, content_type="image/png", body=picture)

    opened.context.route("https://icons.example/**", answer)
    opened.sign_in(email)
    try:
        yield opened
    finally:
        opened.close()


def _new_site(console: Console, name: str) -> str:
    console.goto("/console/sites")
    console.page.fill("#site-name", name)
    with console.page.expect_navigation():
        console.page.click("text=Create site")
    return console.page.inner_text("#app-key")


def test_general_tab_sets_site_url_and_default_icon_with_a_preview(admin: Console) -> None:
    page = admin.page
    app_key = _new_site(admin, "Icon news")
    admin.goto(f"/console/sites/{app_key}/settings/general")
    assert page.is_visible("[data-icon-preview] .muted")
    assert not page.is_visible("[data-icon-preview] img")

    # The app service's rules, their message shown; what was typed stays in the form.
    page.fill("#site-url", "https://news.example/")
    page.fill("#default-icon", "https://icons.example/brand.gif")
    assert not page.is_visible("[data-icon-preview] img")
    with page.expect_navigation():
        page.click("button:text-is('Save')")
    assert page.inner_text("[role=alert]") == "default_icon: must end with .jpg, .jpeg or .png"
    assert page.input_value("#default-icon") == "https://icons.example/brand.gif"

    # The preview follows the URL as it is typed, then the saved icon is shown.
    page.fill("#default-icon", ICON_URL)
    expect(page.locator("[data-icon-preview] img")).to_be_visible()
    with page.expect_navigation():
        page.click("button:text-is('Save')")
    assert page.url.endswith(f"/console/sites/{app_key}/settings/general?saved=1")
    assert page.input_value("#site-url") == "https://news.example/"
    assert page.input_value("#default-icon") == ICON_URL
    assert page.get_attribute("[data-icon-preview] img", "src") == ICON_URL
    assert page.evaluate("document.querySelector('[data-icon-preview] img').naturalWidth") == 64
    assert admin.check("settings-general-icon") == []

    # "" clears them, as on /v1.
    page.fill("#site-url", "")
    page.fill("#default-icon", "")
    with page.expect_navigation():
        page.click("button:text-is('Save')")
    assert (page.input_value("#site-url"), page.input_value("#default-icon")) == ("", "")
    assert page.is_visible("[data-icon-preview] .muted")


def test_plan_tab_shows_the_plan_and_its_quota_and_an_admin_changes_it(
    admin: Console, server: tuple[Processes, Server]
) -> None:
    page, url = admin.page, server[1].url
    app_key = _new_site(admin, "Quota news")
    app_secret = page.inner_text("#app-secret")
    admin.goto(f"/console/sites/{app_key}/settings/plan")
    assert page.inner_text("[data-plan]") == "unlimited"
    assert page.inner_text("[data-quota]") == "0, no limit"
    page.select_option("#plan-choice", "free")
    with page.expect_navigation():
        page.click("button:text-is('Change plan')")
    assert page.url.endswith(f"/console/sites/{app_key}/settings/plan?saved=1")
    assert page.inner_text("[data-plan]") == "free"
    assert page.inner_text("[data-quota]") == "0 of 10"

    # A campaign through the API counts (the same count the quota is checked against).
    body = {"payload": {"title": "Hello", "message": "One", "redirect_url": "https://example.com/"}}
    sent = httpx.post(f"{url}/api/v3/push", json=body, auth=(app_key, app_secret), timeout=10)
    assert sent.status_code == 200, sent.text
    admin.goto(f"/console/sites/{app_key}/settings/plan")
    assert page.inner_text("[data-quota]") == "1 of 10"
    assert admin.check("settings-plan") == []

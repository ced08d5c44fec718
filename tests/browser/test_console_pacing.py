"""The campaign page of a throttled campaign in a real Chromium: its rate, pause and resume buttons,
the capped counter, axe-core on each state, screenshots at two widths."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.console_support import Console, create_operator, register
from tests.browser.harness import ServerApp, wait_until
from tests.e2e.processes import Processes, Server
from tests.fakes.push_service import FakePushService

if TYPE_CHECKING:
    from playwright.sync_api import Browser

with contextlib.suppress(ImportError):  # reported by require_browser()
    from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


@pytest.fixture
def console(browser: Browser, server: tuple[Processes, Server]) -> Iterator[Console]:
    opened = Console.open(browser, server[1].url)
    try:
        yield opened
    finally:
        opened.close()


def test_an_editor_pauses_and_resumes_a_throttled_campaign_from_its_page(
    console: Console, server: tuple[Processes, Server], app: ServerApp, push_service: FakePushService
) -> None:
    procs, running = server
    page = console.page
    for _ in range(12):
        register(running.url, push_service, app.app_key, app.vapid_public_key)
    create_operator(procs, "pacer@example.com", "editor")
    console.sign_in("pacer@example.com")

    # The site's frequency cap, on its General settings.
    console.goto(f"/console/sites/{app.app_key}/settings/general")
    page.fill("#frequency-cap", "3")
    page.fill("#frequency-cap-period", "24")
    with page.expect_navigation():
        page.click("text=Save")
    expect(page.locator(".alert.success")).to_have_text("Saved.")
    assert (page.input_value("#frequency-cap"), page.input_value("#frequency-cap-period")) == ("3", "24")
    assert console.check("settings-frequency-cap") == []

    # A throttled campaign from the compose page: two a second.
    console.goto(f"/console/sites/{app.app_key}/compose")
    page.fill("#payload-title", "Slowly")
    page.fill("#payload-message", "One at a time")
    page.fill("#payload-redirect_url", "https://example.com/slowly")
    page.fill("#rate_per_minute", "120")
    with page.expect_navigation():
        page.click("button[data-send]")
    wait_until(lambda: len(push_service.received) >= 2, "the first sends", timeout_s=20)
    page.reload()
    assert "at most 120 a minute" in page.inner_text("main")
    expect(page.locator("dd[data-counter=capped]")).to_have_text("0")
    with page.expect_navigation():
        page.get_by_role("button", name="Pause sending this campaign").click()
    expect(page.locator(".page-head [data-counter=status]")).to_have_text("Paused")
    assert page.get_by_role("button", name="Resume sending this campaign").count() == 1
    assert page.get_by_role("button", name="Pause sending this campaign").count() == 0
    assert console.check("campaign-paused") == []
    with page.expect_navigation():
        page.get_by_role("button", name="Resume sending this campaign").click()
    expect(page.locator(".page-head [data-counter=status]")).to_have_text("Sending")
    expect(page.locator(".page-head [data-counter=status]")).to_have_text("Sent", timeout=20_000)
    expect(page.locator("dd [data-counter=sent]")).to_have_text("12")
    assert len(push_service.received) == 12

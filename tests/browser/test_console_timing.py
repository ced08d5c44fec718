"""A local-time campaign's page in the console, in Chromium against a real `clarion serve`: the Timing
card shows its local time and when each time zone is released (axe-core, screenshots at two widths)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser.console_support import Console, create_operator, register
from tests.browser.harness import require_browser
from tests.e2e.conftest import engine_env
from tests.e2e.processes import Processes, Server
from tests.fakes.push_service import FakePushService

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Processes, Server]]:
    require_browser()
    root = tmp_path_factory.mktemp("browser-timing")
    procs = Processes(
        root, {**engine_env(f"sqlite:///{root / 'clarion.db'}"), "CLARION_PUSH_HOSTS": "127.0.0.1"}
    )
    try:
        yield procs, procs.server()
    finally:
        procs.close()


def test_a_local_time_campaign_shows_its_releases_by_time_zone(
    browser: Browser, server: tuple[Processes, Server]
) -> None:
    procs, running = server
    create_operator(procs, "timing@example.com", "admin")
    console = Console.open(browser, running.url)
    try:
        console.sign_in("timing@example.com")
        page = console.page
        console.goto("/console/sites")
        page.fill("#site-name", "Morning news")
        with page.expect_navigation():
            page.click("text=Create site")
        app_key, secret = page.inner_text("#app-key"), page.inner_text("#app-secret")
        vapid = httpx.get(f"{running.url}/sdk/v1/apps/{app_key}", timeout=10).json()["vapid_public_key"]
        with FakePushService() as fake:
            register(running.url, fake, app_key, vapid, timezone="Asia/Tokyo")
            register(running.url, fake, app_key, vapid)
            body = {
                "payload": {
                    "title": "Good morning",
                    "message": "Today's news",
                    "redirect_url": "https://example.com/",
                },
                "local_time": "00:00",
            }
            created = httpx.post(
                f"{running.url}/v1/apps/{app_key}/campaigns", json=body, auth=(app_key, secret), timeout=10
            )
            assert created.status_code == 201, created.text
            campaign_id = created.json()["campaign_id"]
            path = f"/console/sites/{app_key}/campaigns/{campaign_id}"
            for _ in range(100):  # until the scheduler has planned it
                console.goto(path)
                if page.locator("[data-releases]").count():
                    break
                page.wait_for_timeout(100)
            assert page.inner_text("[data-local-time]") == (
                "At 00:00 in each subscriber's time zone, within 24 hours of the send time; zones already "
                "past it get it the next day."
            )
            rows = page.locator("[data-releases] tbody tr").all_inner_texts()
            today = datetime.now(UTC).date()
            assert len(rows) == 2, rows
            # Tokyo's next midnight is 15:00 UTC; the default zone (UTC) gets the next UTC midnight.
            assert rows[0].split("\t")[1] == "Asia/Tokyo"
            assert rows[0].split("\t")[0].endswith("15:00")
            assert (
                rows[1]
                == f"{today + timedelta(days=1)} 00:00\tSubscribers without a zone (the site's default zone)"
            )
            assert console.check("campaign-timing") == []
    finally:
        console.close()


def test_the_general_tab_sets_the_default_zone_and_quiet_hours(
    browser: Browser, server: tuple[Processes, Server]
) -> None:
    procs, running = server
    create_operator(procs, "quiet@example.com", "admin")
    console = Console.open(browser, running.url)
    try:
        console.sign_in("quiet@example.com")
        page = console.page
        console.goto("/console/sites")
        page.fill("#site-name", "Quiet news")
        with page.expect_navigation():
            page.click("text=Create site")
        app_key = page.inner_text("#app-key")
        console.goto(f"/console/sites/{app_key}/settings/general")
        page.fill("#default-timezone", "Europe/Atlantis")
        with page.expect_navigation():
            page.click("button:text-is('Save')")
        assert page.inner_text("[role=alert]") == (
            "default_timezone: unknown time zone 'Europe/Atlantis' (an IANA name such as Europe/Paris)"
        )
        page.fill("#default-timezone", "Europe/Paris")
        page.fill("#quiet-start", "22:00")
        page.fill("#quiet-end", "07:00")
        page.select_option("#quiet-mode", "drop")
        with page.expect_navigation():
            page.click("button:text-is('Save')")
        assert page.url.endswith("/settings/general?saved=1")
        values = [
            page.input_value(f"#{name}")
            for name in ("default-timezone", "quiet-start", "quiet-end", "quiet-mode")
        ]
        assert values == ["Europe/Paris", "22:00", "07:00", "drop"]
        assert console.check("settings-general-timing") == []
    finally:
        console.close()


def test_a_best_time_campaign_says_so_and_a_paused_one_may_be_cancelled(
    browser: Browser, server: tuple[Processes, Server]
) -> None:
    procs, running = server
    create_operator(procs, "best@example.com", "admin")
    console = Console.open(browser, running.url)
    try:
        console.sign_in("best@example.com")
        page = console.page
        console.goto("/console/sites")
        page.fill("#site-name", "Best news")
        with page.expect_navigation():
            page.click("text=Create site")
        app_key, secret = page.inner_text("#app-key"), page.inner_text("#app-secret")
        vapid = httpx.get(f"{running.url}/sdk/v1/apps/{app_key}", timeout=10).json()["vapid_public_key"]
        base = f"{running.url}/v1/apps/{app_key}/campaigns"
        payload = {"title": "Good evening", "message": "Today's news", "redirect_url": "https://example.com/"}
        with FakePushService() as fake:
            register(running.url, fake, app_key, vapid)
            body = {"payload": payload, "best_time": True, "local_time": "00:00"}
            created = httpx.post(base, json=body, auth=(app_key, secret), timeout=10)
            assert created.status_code == 201, created.text
            path = f"/console/sites/{app_key}/campaigns/{created.json()['campaign_id']}"
            for _ in range(100):  # until the scheduler has planned it
                console.goto(path)
                if page.locator("[data-releases]").count():
                    break
                page.wait_for_timeout(100)
            assert page.inner_text("[data-best-time]") == (
                "At each subscriber's most engaged hour (the local hour of most of its clicks in the 30 days "
                "before the send time), within 24 hours of the send time; subscribers without clicks get the "
                "local time below."
            )
            assert page.inner_text("[data-releases] caption") == (
                "When each time zone's recipients are released (UTC): those without clicks; the others at "
                "their own hour"
            )
            assert console.check("campaign-best-time") == []

        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        scheduled = httpx.post(
            base, json={"payload": payload, "send_at": later}, auth=(app_key, secret), timeout=10
        )
        campaign_id = scheduled.json()["campaign_id"]
        paused = httpx.post(f"{base}/{campaign_id}/pause", auth=(app_key, secret), timeout=10)
        assert paused.json()["status"] == "paused"
        with page.expect_response(lambda answer: answer.url.endswith("/counters")) as counters:
            console.goto(f"/console/sites/{app_key}/campaigns/{campaign_id}")
        assert counters.value.json()["live"] is True  # so the page keeps its Cancel button
        assert page.inner_text("[data-counter=status]") == "Paused"
        assert page.locator("button:text-is('Cancel this campaign')").is_visible()
        assert console.check("campaign-paused") == []
    finally:
        console.close()

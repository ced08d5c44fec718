"""The web console in a real Chromium against a real `clarion serve`: an operator's whole journey, the
access rules (roles, CSRF, throttled sign-in), axe-core on every page and screenshots at two widths."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.app_tenant.factory import id_hash
from tests.browser.console_support import CSRF_FIELD, PASSWORD, Console, create_operator, event, register
from tests.browser.harness import wait_until
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


def test_an_operator_creates_a_site_sends_a_campaign_and_watches_it_land(
    console: Console, server: tuple[Processes, Server], push_service: FakePushService
) -> None:
    procs, running = server
    url, page = running.url, console.page
    created = create_operator(procs, " Owner@Example.COM ", "admin")
    assert isinstance(created.pop("operator_id"), int)
    assert created == {"email": "owner@example.com", "role": "admin"}

    # Signed out, the console sends the browser to the sign-in page.
    console.goto("/console/")
    assert page.url == f"{url}/console/sign-in"
    assert console.check("sign-in") == []
    console.sign_in("owner@example.com")
    cookie = next(c for c in console.context.cookies() if c["name"] == "clarion_console")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Lax", False)

    # A new site: its REST API tab shows the secret, once, with copy buttons and a ready curl command.
    page.fill("#site-name", "Journey news")
    with page.expect_navigation():
        page.click("text=Create site")
    assert page.inner_text("h2#rest-api") == "REST API"
    app_key, app_secret = page.inner_text("#app-key"), page.inner_text("#app-secret")
    assert re.fullmatch(r"[0-9a-f]{32}", app_key)
    assert re.fullmatch(r"[0-9a-f]{32}", app_secret)
    console.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page.click("button[data-copy=app-secret]")
    expect(page.locator("button[data-copy=app-secret]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == app_secret
    curl = page.inner_text("#curl-example")
    assert f"curl -u '{app_key}:{app_secret}'" in curl
    assert f"{url}/api/v3/push" in curl
    assert console.check("settings-rest-api") == []
    # Shown once: the tab shows it no more.
    console.goto(f"/console/sites/{app_key}/settings/rest-api")
    assert page.locator("#app-secret").count() == 0

    console.goto(f"/console/sites/{app_key}/settings/integration")
    vapid_key, identity_key = page.inner_text("#vapid-key"), page.inner_text("#identity-key")
    assert f"Clarion.push(['init', {{appKey: '{app_key}'}}]);" in page.inner_text("#html-snippet")
    assert page.inner_text("#sw-file") == f"importScripts('{url}/sdk/v1/sw.js');"
    assert console.check("settings-integration") == []
    for tab in ("general", "danger"):
        console.goto(f"/console/sites/{app_key}/settings/{tab}")
        assert console.check(f"settings-{tab}") == []

    # Three subscribers, two tagged "news" through the API with the keys the REST API tab gave.
    subscribers = [register(url, push_service, app_key, vapid_key) for _ in range(3)]
    for reg_id, _ in subscribers[:2]:
        tag = {"regId": reg_id, "name": "news"}
        tagged = httpx.post(f"{url}/api/v3/tag", params=tag, auth=(app_key, app_secret), timeout=10)
        assert tagged.status_code == 200, tagged.text
    transactional = httpx.post(
        f"{url}/api/v3/push",
        json={
            "is_transactional": True,
            "audience": {"tokens": [subscribers[2][0]]},
            "payload": {"title": "Your code", "message": "123456", "redirect_url": "https://example.com/"},
        },
        auth=(app_key, app_secret),
        timeout=10,
    )
    assert transactional.status_code == 200, transactional.text

    # Compose: the recipient count before sending, the API's own message next to a wrong field.
    console.goto(f"/console/sites/{app_key}/compose")
    expect(page.locator("[data-recipient-count]")).to_have_text("3 recipients now")
    page.check("input[name=audience][value=tags]")
    page.fill("#tags", "news")
    expect(page.locator("[data-recipient-count]")).to_have_text("2 recipients now")
    page.check("input[name=tag_match][value=AND]")
    page.fill("#tags", "news, nobody-has-this")
    expect(page.locator("[data-recipient-count]")).to_have_text(
        "audience.tags_segment[1].name: there is no tag 'nobody-has-this' in this app"
    )
    page.fill("#tags", "news")
    page.fill("#payload-title", "Morning edition")
    page.fill("#payload-message", "The news of the day")
    page.fill("#payload-redirect_url", "https://example.com/today")
    page.fill("#payload-icon", "ftp://example.com/icon.png")
    with page.expect_navigation():
        page.click("button[data-send]")
    assert page.inner_text("#payload\\.icon-error") == "payload.icon: must be a valid http(s) URL"
    assert page.get_attribute("#payload-icon", "aria-invalid") == "true"
    assert page.input_value("#payload-title") == "Morning edition"
    assert console.check("compose-error") == []
    page.fill("#payload-icon", "https://example.com/icon.png")
    # The texts are templates (docs/personalization.md): one that cannot compile is named like any field.
    page.fill("#payload-title", "Morning {{ edition")
    with page.expect_navigation():
        page.click("button[data-send]")
    assert page.inner_text("#payload\\.title-error") == (
        "payload.title: the template does not compile: unexpected end of template, "
        "expected 'end of print statement'."
    )
    assert console.check("compose-template-error") == []
    page.fill("#payload-title", 'Morning {{ edition | default("edition") }}')
    with page.expect_navigation():
        page.click("button[data-send]")
    campaign_id = page.url.rsplit("/", 1)[1]
    assert page.url == f"{url}/console/sites/{app_key}/campaigns/{campaign_id}"

    # The campaign's counters reach what the push service and the subscribers' events say, live.
    expect(page.locator("dd [data-counter=audience]")).to_have_text("2")
    expect(page.locator("dd [data-counter=sent]")).to_have_text("2")
    for reg_id, subscription in subscribers[:2]:
        wait_until(lambda s=subscription: push_service.received_for(s.sub_id), "the push at the push service")
        event(url, app_key, reg_id, subscription.auth, campaign_id, "received")
    event(url, app_key, subscribers[0][0], subscribers[0][1].auth, campaign_id, "clicked")
    expect(page.locator("dd [data-counter=received]")).to_have_text("2")
    expect(page.locator("dd [data-counter=clicked]")).to_have_text("1")
    expect(page.locator("[data-counter=ctr]")).to_have_text("50.0%")
    expect(page.locator(".page-head [data-counter=status]")).to_have_text("Sent")
    expect(page.locator("text=Cancel this campaign")).to_be_hidden()  # nothing left to cancel
    expect(page.locator(".chart canvas")).to_have_count(1)  # the time series, drawn by uPlot
    assert console.check("campaign") == []

    # The history: newest first, the transactional campaign only when asked for.
    console.goto(f"/console/sites/{app_key}/campaigns")
    rows = page.locator("table.history tbody tr")
    expect(rows).to_have_count(1)
    assert rows.nth(0).get_attribute("data-campaign") == campaign_id
    cells = [cell.strip() for cell in rows.nth(0).locator("td").all_inner_texts()]
    assert cells[0] == "Sent"
    assert cells[2:] == ["2", "2", "1", "0", "50.0%"]
    assert console.check("campaigns") == []
    # A click, not check(): the box submits its form, and check() would look again at the next page,
    # whose hidden input of the same name it cannot check.
    page.click("input[type=checkbox][name=transactional]")
    page.wait_for_url(f"{url}/console/sites/{app_key}/campaigns?transactional=true")
    expect(rows).to_have_count(2)
    shown = [rows.nth(i).get_attribute("data-campaign") for i in range(2)]
    assert shown == [campaign_id, transactional.json()["id"]]  # newest first

    # A segment, with its size now; it is an audience of the compose page.
    console.goto(f"/console/sites/{app_key}/segments")
    page.fill("#segment-name", "Readers")
    page.fill("#tag-0", "news")
    with page.expect_navigation():
        page.click("text=Save segment")
    assert [c.strip() for c in page.locator("tbody tr").nth(0).locator("td").all_inner_texts()][:2] == [
        "AND news",
        "2",
    ]
    assert console.check("segments") == []

    # To the segment, scheduled for later with a preview of it, then cancelled before it is sent.
    console.goto(f"/console/sites/{app_key}/compose")
    page.check("input[name=audience][value=segment]")
    page.select_option("#segment", label="Readers")
    expect(page.locator("[data-recipient-count]")).to_have_text("2 recipients now")
    page.fill("#payload-title", "Tomorrow")
    page.fill("#payload-message", "The news of tomorrow")
    page.fill("#payload-redirect_url", "https://example.com/tomorrow")
    page.fill("#payload-buttons-0-title", "Read")
    page.fill("#payload-buttons-0-url", "https://example.com/read")
    page.fill("#send_date", "2099-01-01T08:00")
    page.fill("#push_tag", "tomorrow")
    expect(page.locator("[data-preview-message]")).to_have_text("The news of tomorrow")
    expect(page.locator("[data-preview-buttons]")).to_have_text("Read")
    assert console.check("compose") == []
    with page.expect_navigation():
        page.click("button[data-send]")
    expect(page.locator(".page-head [data-counter=status]")).to_have_text("Scheduled")
    assert "send at 2099-01-01 08:00:00 UTC · push tag tomorrow" in page.inner_text("main")
    with page.expect_navigation():
        page.click("text=Cancel this campaign")
    expect(page.locator(".page-head [data-counter=status]")).to_have_text("Cancelled")
    assert page.locator("text=Cancel this campaign").count() == 0
    expect(page.locator("dd [data-counter=audience]")).to_have_text("0")
    assert console.check("campaign-cancelled") == []

    # Subscribers: by platform, and found by tag or regId.
    console.goto(f"/console/sites/{app_key}/subscribers")
    assert page.inner_text(".facts") == "web\n3 active"
    expect(page.locator("table.subscribers tbody tr")).to_have_count(3)
    page.fill("#q", "NEWS")
    with page.expect_navigation():
        page.click("text=Search")
    found = page.locator("table.subscribers tbody tr th").all_inner_texts()
    assert found == [subscribers[1][0], subscribers[0][0]]  # newest first
    expect(page.locator("#growth ~ .chart canvas")).to_have_count(1)  # drawn before the screenshot
    assert console.check("subscribers") == []
    console.goto(f"/console/sites/{app_key}/subscribers?q={subscribers[2][0]}")
    cells = [c.strip() for c in page.locator("table.subscribers tbody tr td").all_inner_texts()]
    assert cells[:4] == ["web", "", "", "Active"]

    # A Push API campaign: its key shown once, a batch sent with it, its counters.
    console.goto(f"/console/sites/{app_key}/push-campaigns")
    assert console.check("push-campaigns-empty") == []
    page.fill("#pc-name", "Order updates")
    page.fill("#pc-message", "Your order has shipped")
    with page.expect_navigation():
        page.click("text=Create and show its push key")
    push_key = page.inner_text("#push-key")
    user = {"user_id": "reader-1", "user_id_hash": id_hash(identity_key, "reader-1")}
    register(url, push_service, app_key, vapid_key, **user)
    batch = httpx.post(
        f"{url}/push_batch", params={"push_key": push_key}, json=[{"swrve_user_id": "reader-1"}], timeout=10
    )
    assert batch.status_code == 202, batch.text
    report = wait_until(
        lambda: (
            (r := httpx.get(batch.headers["location"], timeout=10).json())["status"] != "in_progress" and r
        ),
        "the batch's report",
    )
    assert report["status"] == "done", report
    console.goto(f"/console/sites/{app_key}/push-campaigns")
    row = page.locator("table.push-campaigns tbody tr", has_text="Order updates")
    assert [c.strip() for c in row.locator("td").all_inner_texts()][:5] == ["all", "1", "1", "0", "0"]
    assert console.check("push-campaigns") == []

    console.goto("/console/sites")
    row = page.locator("tbody tr", has_text="Journey news")
    assert [c.strip() for c in row.locator("td").all_inner_texts()][:1] == ["4"]
    assert console.check("sites") == []


def test_roles_csrf_and_sign_in_throttling_are_enforced_by_the_server(
    console: Console, browser: Browser, server: tuple[Processes, Server]
) -> None:
    procs, running = server
    url, page = running.url, console.page
    create_operator(procs, "admin2@example.com", "admin")
    create_operator(procs, "viewer@example.com", "viewer")
    create_operator(procs, "locked@example.com", "editor")
    console.sign_in("admin2@example.com")
    page.fill("#site-name", "Access site")
    with page.expect_navigation():
        page.click("text=Create site")
    app_key = page.inner_text("#app-key")

    # A forged form (no CSRF token) is refused, and does nothing.
    forged = page.request.post(f"{url}/console/sites", form={"name": "Forged"}, max_redirects=0)
    assert forged.status == 403
    assert "The form&#39;s security token is missing or out of date" in forged.text()
    wrong = page.request.post(f"{url}/console/sites", form={"name": "Forged", "csrf_token": "x" * 43})
    assert wrong.status == 403
    console.goto("/console/sites")
    assert page.locator("tbody tr", has_text="Forged").count() == 0

    # An admin makes an editor; an editor may send but manage neither operators nor credentials.
    console.goto("/console/operators")
    page.fill("#op-email", "editor@example.com")
    page.select_option("#op-role", "editor")
    page.fill("#op-password", PASSWORD)
    with page.expect_navigation():
        page.click("text=Create operator")
    row = page.locator("tbody tr", has_text="editor@example.com")
    assert [c.strip() for c in row.locator("td").all_inner_texts()][:1] == ["editor"]
    assert console.check("operators") == []
    editor = Console.open(browser, url)
    try:
        editor.sign_in("editor@example.com")
        assert editor.page.locator("text=Operators").count() == 0
        assert editor.goto("/console/operators") == 403
        assert editor.goto(f"/console/sites/{app_key}/compose") == 200
        token = editor.csrf_token()
        for path in (f"/console/sites/{app_key}/rotate-secret", "/console/operators"):
            refused = editor.page.request.post(
                f"{url}{path}", form={"csrf_token": token, "email": "x@example.com"}
            )
            assert refused.status == 403, path
    finally:
        editor.close()

    # A viewer sees no way to send, and the server refuses the send all the same.
    viewer = Console.open(browser, url)
    try:
        viewer.sign_in("viewer@example.com")
        viewer.goto(f"/console/sites/{app_key}/campaigns")
        assert viewer.page.locator("text=New campaign").count() == 0
        assert viewer.page.locator("nav[aria-label=Site] >> text=Compose").count() == 0
        assert viewer.goto(f"/console/sites/{app_key}/compose") == 403
        assert viewer.page.locator("button[data-send]").count() == 0
        viewer.goto("/console/sites")
        form = {
            "csrf_token": viewer.csrf_token(),
            "payload.message": "Not from a viewer",
            "payload.redirect_url": "https://example.com/",
            "audience": "all",
            "action": "send",
        }
        compose = f"{url}/console/sites/{app_key}/compose"
        refused = viewer.page.request.post(compose, form=form, max_redirects=0)
        assert refused.status == 403
        assert "Your role does not allow this" in refused.text()
        rotate = viewer.page.request.post(
            f"{url}/console/sites/{app_key}/rotate-secret", form={"csrf_token": form["csrf_token"]}
        )
        assert rotate.status == 403
        viewer.goto(f"/console/sites/{app_key}/campaigns")
        assert viewer.page.locator("text=No campaigns yet.").count() == 1
        assert viewer.check("campaigns-viewer") == []
    finally:
        viewer.close()

    # Wrong passwords: four are answered at once, the fifth in a row is refused with 429, and the
    # right password too until the wait is over.
    stranger = Console.open(browser, url)
    try:
        stranger.goto("/console/sign-in")
        token = stranger.csrf_token()
        statuses = []
        for attempt in range(6):
            password = PASSWORD if attempt == 5 else f"wrong-{attempt}"
            answer = stranger.page.request.post(
                f"{url}/console/sign-in",
                form={"csrf_token": token, "email": "locked@example.com", "password": password},
                max_redirects=0,
            )
            statuses.append(answer.status)
            found = CSRF_FIELD.search(answer.text())
            assert found is not None
            token = found.group(1)
            if answer.status == 429:
                assert answer.headers["retry-after"] in ("29", "30")
                assert "Too many wrong passwords: try again in" in answer.text()
        assert statuses == [401, 401, 401, 401, 429, 429]
        assert stranger.page.request.get(f"{url}/console/sites", max_redirects=0).status == 303
    finally:
        stranger.close()

    # Signing out ends the session on the server.
    console.goto("/console/sites")
    with page.expect_navigation():
        page.click("text=Sign out")
    assert page.url == f"{url}/console/sign-in"
    assert page.request.get(f"{url}/console/sites", max_redirects=0).status == 303

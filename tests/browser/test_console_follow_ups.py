"""The campaign page's update and retract buttons in Chromium: an editor corrects a sent campaign, then
retracts it; each follow-up reaches the push service and is listed on the campaign's page."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser.console_support import Console, create_operator, register
from tests.browser.harness import wait_until
from tests.e2e.processes import Processes, Server
from tests.fakes.push_service import FakePushService

if TYPE_CHECKING:
    from playwright.sync_api import Browser

with contextlib.suppress(ImportError):  # reported by require_browser()
    from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


@pytest.fixture
def editor(
    browser: Browser, server: tuple[Processes, Server], request: pytest.FixtureRequest
) -> Iterator[Console]:
    procs, running = server
    email = f"{request.node.name[:40].replace('_', '-')}@example.com"
    create_operator(procs, email, "editor")
    opened = Console.open(browser, running.url)
    opened.sign_in(email)
    try:
        yield opened
    finally:
        opened.close()


def _wait_sent(url: str, auth: tuple[str, str], campaign_id: str) -> None:
    def done() -> bool:
        answer = httpx.get(f"{url}/api/v3/messages/{campaign_id}", auth=auth, timeout=10)
        return bool(answer.json()["status"] == "SENT")

    wait_until(done, f"campaign {campaign_id} sent")


def test_an_editor_updates_then_retracts_a_sent_campaign(
    editor: Console, server: tuple[Processes, Server], push_service: FakePushService
) -> None:
    procs, running = server
    created = json.loads(procs.cli("apps", "create", "Follow-up news", "--plan", "unlimited", "--json"))
    auth = (created["app_key"], created["app_secret"])
    app_key = created["app_key"]
    _reg_id, subscription = register(running.url, push_service, app_key, created["vapid_public_key"])
    body = {"payload": {"title": "Frist", "message": "Tpyo", "redirect_url": "https://example.com/a"}}
    sent = httpx.post(f"{running.url}/api/v3/push", json=body, auth=auth, timeout=10)
    campaign_id = str(sent.json()["id"])
    _wait_sent(running.url, auth, campaign_id)

    page = editor.page
    campaign_page = f"/console/sites/{app_key}/campaigns/{campaign_id}"
    editor.goto(campaign_page)
    assert page.input_value("#update-payload-title") == "Frist"
    page.fill("#update-payload-title", "First")
    page.fill("#update-payload-message", "")
    with page.expect_navigation():
        page.click("text=Send the update")
    expect(page.locator("[role=alert]")).to_contain_text("The update was not sent: payload.message")
    assert page.get_attribute("#update-payload-message", "aria-invalid") == "true"
    page.fill("#update-payload-message", "Typo fixed")
    with page.expect_navigation():
        page.click("text=Send the update")
    update_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("[data-follows]")).to_contain_text(f"An update of campaign {campaign_id}")
    _wait_sent(running.url, auth, update_id)

    editor.goto(campaign_page)
    with page.expect_navigation():
        page.click("text=Retract this campaign")
    retract_id = page.url.rsplit("/", 1)[1]
    _wait_sent(running.url, auth, retract_id)

    wait_until(lambda: len(push_service.received_for(subscription.sub_id)) == 3, "three messages")
    _original, update, retraction = (
        json.loads(m.payload) for m in push_service.received_for(subscription.sub_id)
    )
    assert (update["title"], update["message"], update["tag"]) == (
        "First",
        "Typo fixed",
        f"clarion-{campaign_id}",
    )
    assert retraction == {"campaign_id": campaign_id, "retract": True, "tag": f"clarion-{campaign_id}"}

    editor.goto(campaign_page)
    listed = page.locator("[data-follow-ups] li").all_inner_texts()
    assert [line.split(" · ")[0] for line in listed] == [f"Update {update_id}", f"Retraction {retract_id}"]
    assert listed[0].endswith("“First”")
    assert editor.check("campaign-follow-ups") == []


def test_an_ab_campaign_page_shows_each_variants_funnel(
    editor: Console, server: tuple[Processes, Server], push_service: FakePushService
) -> None:
    procs, running = server
    created = json.loads(procs.cli("apps", "create", "A/B news", "--plan", "unlimited", "--json"))
    auth = (created["app_key"], created["app_secret"])
    for _ in range(12):
        register(running.url, push_service, created["app_key"], created["vapid_public_key"])
    ab_test = {
        "variants": [
            {
                "percent": 40,
                "payload": {"title": "Short", "message": "m", "redirect_url": "https://e.example/"},
            },
            {
                "percent": 40,
                "payload": {"title": "Long", "message": "m", "redirect_url": "https://e.example/"},
            },
        ],
        "holdout_percent": 20,
    }
    answer = httpx.post(
        f"{running.url}/v1/apps/{created['app_key']}/campaigns",
        json={"ab_test": ab_test},
        auth=auth,
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    campaign_id = answer.json()["campaign_id"]
    _wait_sent(running.url, auth, campaign_id)
    groups = httpx.get(
        f"{running.url}/v1/apps/{created['app_key']}/campaigns/{campaign_id}/variants", auth=auth
    ).json()

    editor.goto(f"/console/sites/{created['app_key']}/campaigns/{campaign_id}")
    rows = [row.split("\t") for row in editor.page.locator("table.variants tbody tr").all_inner_texts()]
    assert rows == [
        [label, f"{g['percent']} %", str(g["audience"]), str(g["sent"]), "0", "0", "0", "0.0 %"]
        for label, g in zip(
            ("Variant 1: “Short”", "Variant 2: “Long”", "Holdout (sent nothing)"),
            groups["groups"],
            strict=True,
        )
    ]
    assert sum(int(row[2]) for row in rows) == 12
    assert editor.check("campaign-variants") == []

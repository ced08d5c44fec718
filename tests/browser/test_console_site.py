"""The console's pages beyond the first journey, in Chromium against a real `clarion serve`: a site's
settings (site URL and default icon, providers, plan), a campaign's outcomes and time series, and a
subscriber's page, each with axe-core and screenshots at two widths."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image

from tests.app_tenant.factory import id_hash
from tests.browser.console_support import Console, create_operator, event, register
from tests.browser.harness import require_browser, wait_until
from tests.e2e.conftest import engine_env
from tests.e2e.processes import Processes, Server
from tests.fakes.fcm import FakeFcm
from tests.fakes.push_service import FakePushService, Respond
from tests.fakes.wns import FakeWns

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Route

with contextlib.suppress(ImportError):  # reported by require_browser()
    from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

ICON_URL = "https://icons.example/brand.png"


@dataclass
class Natives:
    fcm: FakeFcm
    wns: FakeWns


@pytest.fixture(scope="module")
def natives() -> Iterator[Natives]:
    with FakeFcm() as fcm, FakeWns() as wns:
        yield Natives(fcm, wns)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, natives: Natives) -> Iterator[tuple[Processes, Server]]:
    """This module's `clarion serve`, with the fakes' FCM and WNS token endpoints (for the test button)."""
    require_browser()
    root = tmp_path_factory.mktemp("browser-site")
    env = {
        **engine_env(f"sqlite:///{root / 'clarion.db'}"),
        "CLARION_FCM_URL": natives.fcm.origin,
        "CLARION_WNS_URL": natives.wns.origin,
    }
    procs = Processes(root, env)
    try:
        yield procs, procs.server()
    finally:
        procs.close()


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


def _p8() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode()


def test_providers_tab_uploads_tests_and_shows_the_last_failure(
    admin: Console, natives: Natives, tmp_path: Path
) -> None:
    page = admin.page
    app_key = _new_site(admin, "Native news")
    admin.goto(f"/console/sites/{app_key}/settings/providers")
    assert page.locator("[data-none]").count() == 4

    # FCM: the service-account file uploaded, tested against the (fake) token endpoint.
    account = natives.fcm.new_service_account("shop")
    account_file = tmp_path / "service-account.json"
    account_file.write_text(json.dumps(account))
    fcm = page.locator("[data-provider=fcm]")
    fcm.locator("summary").click()
    fcm.locator("#fcm-file").set_input_files(str(account_file))
    with page.expect_navigation():
        fcm.locator("button[type=submit]").click()
    assert page.inner_text(".alert.success") == (
        "The Firebase Cloud Messaging (Android) credentials were saved."
    )
    assert "shop" in fcm.inner_text()
    assert account["client_email"] in fcm.inner_text()
    assert account["private_key"] not in page.content()
    with page.expect_navigation():
        fcm.locator("button:text-is('Test')").click()
    assert page.inner_text("[data-tested=fcm]") == (
        "Firebase Cloud Messaging (Android): the credentials work (a token was obtained; nothing was sent)."
    )
    assert fcm.locator("[data-last-used]").inner_text() != "never"

    # APNs: a .p8 key and its ids; a wrong key file is refused with the service's message.
    apns = page.locator("[data-provider=apns]")
    bad_key = tmp_path / "bad.p8"
    bad_key.write_text("not a key")
    apns.locator("summary").click()
    apns.locator("#apns-file").set_input_files(str(bad_key))
    for field, value in (
        ("#apns-key-id", "KEY1234567"),
        ("#apns-team-id", "TEAM123456"),
        ("#apns-topic", "com.example.news"),
    ):
        apns.locator(field).fill(value)
    with page.expect_navigation():
        apns.locator("button[type=submit]").click()
    assert page.inner_text("[role=alert]").startswith("apns: the key cannot be read")
    assert apns.locator("#apns-topic").input_value() == "com.example.news"
    key_file = tmp_path / "AuthKey.p8"
    key_file.write_text(_p8())
    apns.locator("#apns-file").set_input_files(str(key_file))
    with page.expect_navigation():
        apns.locator("button[type=submit]").click()
    assert "com.example.news" in apns.inner_text()

    # WNS with a wrong secret: the test fails, with the provider's reason kept as the last failure.
    client_id, _ = natives.wns.new_client()
    wns = page.locator("[data-provider=wns]")
    wns.locator("summary").click()
    wns.locator("#wns-client-id").fill(client_id)
    wns.locator("#wns-client-secret").fill("wrong")
    with page.expect_navigation():
        wns.locator("button[type=submit]").click()
    with page.expect_navigation():
        wns.locator("button:text-is('Test')").click()
    reason = page.inner_text("[data-tested=wns]")
    assert reason.startswith(
        "Windows Push Notification Services: the test failed: channel: token endpoint: HTTP"
    )
    assert wns.locator("[data-last-failure]").inner_text().endswith(reason.split("the test failed: ", 1)[1])
    assert admin.check("settings-providers") == []

    with page.expect_navigation():
        wns.locator("button:text-is('Remove')").click()
    assert wns.locator("[data-none]").count() == 1


def _site_with_secret(console: Console, name: str) -> tuple[str, str, str]:
    """A new site: its app key, app secret and VAPID public key."""
    app_key = _new_site(console, name)
    secret = console.page.inner_text("#app-secret")
    console.goto(f"/console/sites/{app_key}/settings/integration")
    return app_key, secret, console.page.inner_text("#vapid-key")


def _sent(url: str, auth: tuple[str, str], campaign_id: str) -> None:
    def done() -> bool:
        answer = httpx.get(f"{url}/api/v3/messages/{campaign_id}", auth=auth, timeout=10)
        return bool(answer.json()["status"] == "SENT")

    wait_until(done, "the campaign sent")


def test_campaign_page_pages_and_filters_outcomes_and_charts_delivery_and_clicks(
    admin: Console, server: tuple[Processes, Server], push_service: FakePushService
) -> None:
    page, url = admin.page, server[1].url
    app_key, secret, vapid_key = _site_with_secret(admin, "Outcome news")
    fine = [register(url, push_service, app_key, vapid_key) for _ in range(50)]
    gone = register(url, push_service, app_key, vapid_key)
    push_service.script(gone[1].sub_id, [Respond(410)])
    refused = register(url, push_service, app_key, vapid_key)
    push_service.script(refused[1].sub_id, [Respond(400)])
    body = {"payload": {"title": "Outcomes", "message": "To 52", "redirect_url": "https://example.com/"}}
    sent = httpx.post(f"{url}/api/v3/push", json=body, auth=(app_key, secret), timeout=10)
    assert sent.status_code == 200, sent.text
    campaign_id = str(sent.json()["id"])
    _sent(url, (app_key, secret), campaign_id)
    for reg_id, subscription in fine[:3]:
        event(url, app_key, reg_id, subscription.auth, campaign_id, "received")
    event(url, app_key, fine[0][0], fine[0][1].auth, campaign_id, "clicked")

    # The outcomes: 50 a page in ledger order, then the rest; filtered by outcome.
    campaign_page = f"/console/sites/{app_key}/campaigns/{campaign_id}"
    admin.goto(campaign_page)
    rows = page.locator("table.outcomes tbody tr")
    expect(rows).to_have_count(50)
    first = [row.split("\t") for row in rows.all_inner_texts()]
    with page.expect_navigation():
        page.click("text=Next page")
    expect(rows).to_have_count(2)
    rest = [row.split("\t") for row in rows.all_inner_texts()]
    assert page.locator("text=Next page").count() == 0
    outcomes = {r[0]: (r[2], r[3]) for r in first + rest}
    assert len(outcomes) == 52
    assert Counter(outcome for outcome, _ in outcomes.values()) == Counter(
        {"Sent": 50, "Gone": 1, "Rejected": 1}
    )
    assert outcomes[gone[0]] == ("Gone", "1")
    page.select_option("#outcome-status", "gone")
    page.wait_for_url(f"{url}{campaign_page}?status=gone#recipients")
    expect(rows).to_have_count(1)
    assert rows.nth(0).locator("th").inner_text() == gone[0]

    # The time series: uPlot's chart, and its figures as a table.
    expect(page.locator(".chart canvas")).to_have_count(1)
    page.click("text=The figures per minute (UTC)")
    figures = [row.split("\t")[1:] for row in page.locator("table.series tbody tr").all_inner_texts()]
    assert [sum(int(row[i]) for row in figures) for i in range(3)] == [50, 3, 1]
    assert admin.check("campaign-outcomes") == []


def test_compose_narrows_a_campaign_to_the_platforms_ticked(
    admin: Console, server: tuple[Processes, Server], push_service: FakePushService
) -> None:
    page, url = admin.page, server[1].url
    app_key, _, vapid_key = _site_with_secret(admin, "Platform news")
    for _ in range(2):
        register(url, push_service, app_key, vapid_key)
    for token in ("device-a", "device-b", "device-c"):
        native = {"app_key": app_key, "platform": "android", "token": token}
        assert httpx.post(f"{url}/sdk/v1/subscribers", json=native, timeout=10).status_code == 201

    # The recipient count follows the boxes (campaign.service.dry_run with the platforms).
    admin.goto(f"/console/sites/{app_key}/compose")
    count = page.locator("[data-recipient-count]")
    expect(count).to_have_text("5 recipients now")
    assert [box.is_checked() for box in page.locator("[data-platforms] input[type=checkbox]").all()] == [
        True
    ] * 5
    page.uncheck("input[name='platform.android']")
    expect(count).to_have_text("2 recipients now")
    for platform in ("web", "ios", "adm", "wns"):
        page.uncheck(f"input[name='platform.{platform}']")
    expect(count).to_have_text("platforms: choose at least one platform")

    # Sending with none ticked: /v1's rule and message, next to the boxes.
    page.fill("#payload-title", "Android only")
    page.fill("#payload-message", "For the app")
    page.fill("#payload-redirect_url", "https://example.com/app")
    with page.expect_navigation():
        page.click("button[data-send]")
    assert page.inner_text("#platforms-error") == "platforms: choose at least one platform"
    assert admin.check("compose-platforms") == []

    page.check("input[name='platform.android']")
    expect(count).to_have_text("3 recipients now")
    with page.expect_navigation():
        page.click("button[data-send]")
    assert "/campaigns/" in page.url
    expect(page.locator("dd [data-counter=audience]")).to_have_text("3")
    assert page.inner_text("[data-audience-shown]") == "all · platforms: android"


def test_a_subscribers_page_and_import_and_export(
    admin: Console, server: tuple[Processes, Server], push_service: FakePushService, tmp_path: Path
) -> None:
    page, url = admin.page, server[1].url
    app_key, secret, vapid_key = _site_with_secret(admin, "Reader news")
    auth = (app_key, secret)
    (reg_id, subscription), _ = (register(url, push_service, app_key, vapid_key) for _ in range(2))
    for path, params in (("tag", {"name": "news"}), ("tag", {"name": "Sport"}), ("alias", {"name": "ann"})):
        answer = httpx.post(f"{url}/api/v3/{path}", params={"regId": reg_id, **params}, auth=auth, timeout=10)
        assert answer.status_code == 200, answer.text
    body = {"payload": {"title": "Hello Ann", "message": "Hi", "redirect_url": "https://example.com/"}}
    sent = httpx.post(f"{url}/api/v3/push", json=body, auth=auth, timeout=10)
    campaign_id = str(sent.json()["id"])
    _sent(url, auth, campaign_id)
    event(url, app_key, reg_id, subscription.auth, campaign_id, "clicked")

    # From the list to a subscriber's page: its device, tags, alias and the campaigns it received.
    admin.goto(f"/console/sites/{app_key}/subscribers?q=ann")
    with page.expect_navigation():
        page.click(f"text={reg_id}")
    assert page.url == f"{url}/console/sites/{app_key}/subscribers/{reg_id}"
    facts = {key: page.inner_text(f"[data-fact={key}]") for key in ("platform", "alias", "tags", "endpoint")}
    assert facts == {"platform": "web", "alias": "ann", "tags": "news Sport", "endpoint": "127.0.0.1"}
    received = page.locator("table.received tbody tr")
    expect(received).to_have_count(1)
    assert received.nth(0).get_attribute("data-campaign") == campaign_id
    assert received.nth(0).inner_text().split("\t")[:3] == ["Hello Ann", "Sent", "Yes"]
    assert admin.check("subscriber") == []
    assert admin.goto(f"/console/sites/{app_key}/subscribers/no-such-reg-id") == 404

    # An import (two new subscribers, one line refused), then the export holds all four.
    lines = [
        json.dumps({"subscription": push_service.new_subscription().to_json(), "tags": ["imported"]}),
        json.dumps({"subscription": push_service.new_subscription().to_json()}),
        json.dumps({"endpoint": "https://evil.example.com/push/1", "p256dh": "x", "auth": "y"}),
    ]
    upload = tmp_path / "subscribers.ndjson"
    upload.write_text("\n".join(lines) + "\n")
    admin.goto(f"/console/sites/{app_key}/subscribers")
    page.set_input_files("#import-file", str(upload))
    with page.expect_navigation():
        page.click("button:text-is('Import')")
    report = page.inner_text("[data-import-report]")
    assert report.split("\n") == [
        "Imported 3 lines: 2 created, 0 already there, 1 refused.",
        "",
        "Line 3: endpoint host evil.example.com is not a known push service",
    ]
    # The growth chart (uPlot) and its figures: today's four new subscribers.
    expect(page.locator("#growth ~ .chart canvas")).to_have_count(1)
    page.click("text=The figures per day (UTC)")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert page.locator("table.growth tbody tr").all_inner_texts() == [f"{today}\t4"]
    assert admin.check("subscribers-import") == []
    with page.expect_download() as download:
        page.click("a:text-is('NDJSON')")
    exported = [json.loads(line) for line in Path(download.value.path()).read_text().splitlines()]
    assert len(exported) == 4
    assert sorted((r["alias"] or "", r["tags"]) for r in exported) == [
        ("", []),
        ("", []),
        ("", ["imported"]),
        ("ann", ["news", "Sport"]),
    ]
    assert len({r["endpoint"] for r in exported}) == 4


def test_history_is_searched_by_push_tag(admin: Console, server: tuple[Processes, Server]) -> None:
    page, url = admin.page, server[1].url
    app_key = _new_site(admin, "Tagged news")
    auth = (app_key, page.inner_text("#app-secret"))
    ids = {}
    for title, tag in (("Spring sale", "promo"), ("Daily digest", None), ("Summer sale", "promo")):
        body = {"payload": {"title": title, "message": "m", "redirect_url": "https://example.com/"}}
        sent = httpx.post(
            f"{url}/api/v3/push", json={**body, "push_tag": tag} if tag else body, auth=auth, timeout=10
        )
        assert sent.status_code == 200, sent.text
        ids[title] = str(sent.json()["id"])
    admin.goto(f"/console/sites/{app_key}/campaigns")
    rows = page.locator("table.history tbody tr")
    expect(rows).to_have_count(3)
    page.fill("#push-tag", "promo")
    with page.expect_navigation():
        page.click("button:text-is('Search')")
    assert page.url == f"{url}/console/sites/{app_key}/campaigns?push_tag=promo"
    assert [rows.nth(i).get_attribute("data-campaign") for i in range(rows.count())] == [
        ids["Summer sale"],
        ids["Spring sale"],
    ]
    assert page.locator("[data-push-tag]").all_inner_texts() == ["promo", "promo"]
    assert admin.check("campaigns-push-tag") == []
    admin.goto(f"/console/sites/{app_key}/campaigns?push_tag=nothing")
    assert page.inner_text(".empty") == "No campaign has this push tag."


def test_a_push_api_campaigns_page_lists_its_batches_with_their_reports(
    admin: Console, server: tuple[Processes, Server], push_service: FakePushService
) -> None:
    page, url = admin.page, server[1].url
    app_key, _, vapid_key = _site_with_secret(admin, "Batch news")
    identity_key = page.inner_text("#identity-key")
    register(
        url,
        push_service,
        app_key,
        vapid_key,
        user_id="reader-1",
        user_id_hash=id_hash(identity_key, "reader-1"),
    )
    admin.goto(f"/console/sites/{app_key}/push-campaigns")
    page.fill("#pc-name", "Order updates")
    page.fill("#pc-message", "Your order has shipped")
    with page.expect_navigation():
        page.click("text=Create and show its push key")
    push_key = page.inner_text("#push-key")
    users = [{"swrve_user_id": "reader-1"}, {"swrve_user_id": "nobody-here"}]
    batch = httpx.post(f"{url}/push_batch", params={"push_key": push_key}, json=users, timeout=10)
    assert batch.status_code == 202, batch.text
    report = wait_until(
        lambda: (
            (r := httpx.get(batch.headers["location"], timeout=10).json())["status"] != "in_progress" and r
        ),
        "the batch's report",
    )

    # From the list to the campaign's page: the batch with the report /push_batch's status gives.
    with page.expect_navigation():
        page.click("a:text-is('Order updates')")
    row = page.locator("table.batches tbody tr")
    expect(row).to_have_count(1)
    assert row.get_attribute("data-batch") == report["batch_id"]
    cells = [c.strip() for c in row.locator("td").all_inner_texts()][:5]
    counts = report["counts"]
    assert cells == [
        report["status"].replace("_", " ").capitalize(),
        str(counts["total"]),
        str(counts["sent"]),
        str(counts["warnings"]),
        str(counts["failures"]),
    ]
    assert (counts["total"], counts["sent"]) == (2, 1)
    row.locator("summary").click()
    entries = [(e["user"], e["reason"]) for e in report["warnings"] + report["failures"]]
    assert entries
    assert [li.split(" ", 1)[1] for li in row.locator("ul.report li").all_inner_texts()] == [
        f"{user or '(no user)'}: {reason}" for user, reason in entries
    ]
    assert admin.check("push-campaign") == []


def test_integration_tab_rotates_the_vapid_key_and_shows_the_migration(
    admin: Console, push_service: FakePushService
) -> None:
    page = admin.page
    app_key = _new_site(admin, "Rotating news")
    status = admin.goto(f"/console/sites/{app_key}/settings/integration")
    assert status == 200, page.content()[:3000]
    old_key = page.inner_text("#vapid-key")
    assert page.locator("[data-vapid-progress]").count() == 0
    register(admin.url, push_service, app_key, old_key)
    with page.expect_navigation():
        page.click("text=Rotate the VAPID key")
    new_key = page.inner_text("#vapid-key")
    assert new_key != old_key
    assert page.inner_text(".alert.success").startswith("The site has a new VAPID key.")
    assert page.inner_text("[data-vapid-progress]") == "0 of 1 active web subscribers use the current key."
    # A browser that subscribed again with the new key (the Web SDK says which key it used).
    register(admin.url, push_service, app_key, new_key, vapid_public_key=new_key)
    admin.goto(f"/console/sites/{app_key}/settings/integration")
    assert page.inner_text("[data-vapid-progress]") == "1 of 2 active web subscribers use the current key."
    rows = [row.split("\t") for row in page.inner_text("table tbody").splitlines()]
    assert [(row[0], row[-1]) for row in rows] == [
        (f"{new_key[:16]}… (current)", "1"),
        (f"{old_key[:16]}…", "1"),
    ]
    assert admin.check("settings-vapid-rotation") == []

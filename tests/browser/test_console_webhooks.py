"""A site's Webhooks settings tab in Chromium against a real `clarion serve` and a real local receiver:
an admin adds an endpoint (its secret shown once, verifying the requests the receiver gets), watches
its delivery state while the receiver fails then recovers, edits its event types, disables it,
rotates its secret, switches the event feed and deletes it; a viewer sees the state and no forms.
axe-core and screenshots at two widths."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.browser.console_support import Console, create_operator, register
from tests.browser.harness import require_browser, wait_until
from tests.e2e.conftest import engine_env
from tests.e2e.processes import Processes, Server
from tests.fakes.push_service import FakePushService

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.e2e


@dataclass
class Receiver:
    """A local webhook receiver: answers 500 while `failing`, else 204; keeps what it accepted."""

    failing: bool = True
    accepted: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with found.lock:
                status = 500 if found.failing else 204
                if status == 204:
                    found.accepted.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Processes, Server]]:
    require_browser()
    root = tmp_path_factory.mktemp("browser-webhooks")
    env = {
        **engine_env(f"sqlite:///{root / 'clarion.db'}"),
        # The receiver is on loopback: opened to it explicitly, as an operator would for a private host.
        "CLARION_OUTBOUND_ALLOW": "127.0.0.1/32",
        "CLARION_WEBHOOK_RETRY_BASE_S": "0.2",
    }
    procs = Processes(root, env)
    try:
        yield procs, procs.server()
    finally:
        procs.close()


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


def _signed_in(browser: Browser, server: tuple[Processes, Server], email: str, role: str) -> Console:
    procs, running = server
    create_operator(procs, email, role)
    opened = Console.open(browser, running.url)
    opened.sign_in(email)
    return opened


def _fact(page: Page, name: str) -> str:
    return page.inner_text(f"[data-webhook] [data-{name}]")


def _state(console: Console, app_key: str) -> dict[str, str]:
    console.goto(f"/console/sites/{app_key}/settings/webhooks")
    names = ("enabled", "types", "waiting", "failing", "last-error")
    return {name: _fact(console.page, name) for name in names}


def test_an_admin_manages_webhook_endpoints_and_sees_their_delivery_state(
    browser: Browser, server: tuple[Processes, Server], receiver: Receiver, fake: FakePushService
) -> None:
    url = server[1].url
    admin = _signed_in(browser, server, "webhooks-admin@example.com", "admin")
    viewer = _signed_in(browser, server, "webhooks-viewer@example.com", "viewer")
    try:
        page = admin.page
        admin.goto("/console/sites")
        page.fill("#site-name", "Hook news")
        with page.expect_navigation():
            page.click("text=Create site")
        app_key, app_secret = page.inner_text("#app-key"), page.inner_text("#app-secret")
        admin.goto(f"/console/sites/{app_key}/settings/integration")
        vapid_key = page.inner_text("#vapid-key")
        admin.goto(f"/console/sites/{app_key}/settings/webhooks")
        assert page.inner_text("[data-no-webhooks]") == "No endpoints yet."
        assert page.inner_text("[data-feed]") == "The event feed is off."

        # The event service's rules, their message shown; what was typed stays in the form.
        page.fill("#webhook-url", "ftp://hooks.example/in")
        page.check("input[name=event_types][value='subscriber.created']")
        with page.expect_navigation():
            page.click("button:text-is('Add the endpoint')")
        assert page.inner_text("[role=alert]") == "url: an http or https URL with a host"
        assert page.input_value("#webhook-url") == "ftp://hooks.example/in"
        assert page.is_checked("#webhook-new ~ form input[value='subscriber.created']")

        page.fill("#webhook-url", receiver.url)
        page.fill("#webhook-description", "Our CRM")
        page.check("#webhook-new ~ form input[value='campaign.finished']")
        with page.expect_navigation():
            page.click("button:text-is('Add the endpoint')")
        secret = page.inner_text("#webhook-secret")
        assert secret.startswith("whsec_")
        assert "shown only this once" in page.inner_text(".alert.warning")
        assert page.inner_text("[data-webhook] [data-url]") == receiver.url
        assert page.inner_text("[data-webhook] [data-description]") == "Our CRM"
        assert admin.check("settings-webhooks-secret") == []
        assert _state(admin, app_key) == {
            "enabled": "Enabled",
            "types": "campaign.finished, subscriber.created",
            "waiting": "0",
            "failing": "not failing",
            "last-error": "none",
        }
        assert page.locator("#webhook-secret").count() == 0  # shown once

        # A new subscriber is an event; the receiver refuses it: failing, with its reason, one waiting.
        reg_id, _ = register(url, fake, app_key, vapid_key)
        wait_until(lambda: _state(admin, app_key)["failing"] != "not failing", "the endpoint failing")
        failing = _state(admin, app_key)
        assert (failing["waiting"], failing["last-error"]) == ("1", "HTTP 500")
        assert page.locator("[data-webhook] [data-next-attempt]").count() == 1
        assert admin.check("settings-webhooks-failing") == []

        # The receiver recovers: the event arrives signed by the secret shown, nothing waits.
        with receiver.lock:
            receiver.failing = False
        wait_until(lambda: _state(admin, app_key)["waiting"] == "0", "the event delivered")
        recovered = _state(admin, app_key)
        assert (recovered["failing"], recovered["last-error"]) == ("not failing", "HTTP 500")
        assert _fact(page, "delivered") != "none yet"
        headers, body = receiver.accepted[0]
        assert Webhook(secret).verify(body, headers)["data"]["events"][0]["data"] == {
            "subscriber_id": reg_id,
            "platform": "web",
        }

        # The filter edited: nothing ticked is every type.
        page.click("[data-webhook] summary")
        for ticked in ("campaign.finished", "subscriber.created"):
            page.uncheck(f"[data-webhook] input[value='{ticked}']")
        with page.expect_navigation():
            page.click("button:text-is('Save the event types')")
        assert page.inner_text("[role=status].success") == "The event types were saved."
        assert _fact(page, "types") == "All"

        # Disabled, enabled again.
        with page.expect_navigation():
            page.click("[data-webhook] button:text-is('Disable')")
        assert (_fact(page, "enabled"), page.inner_text(".alert.success")) == (
            "Disabled",
            "The endpoint was disabled.",
        )
        with page.expect_navigation():
            page.click("[data-webhook] button:text-is('Enable')")
        assert _fact(page, "enabled") == "Enabled"

        # A rotation shows the new secret once; the previous one keeps signing beside it.
        with page.expect_navigation():
            page.click("[data-webhook] button:text-is('Rotate secret')")
        rotated = page.inner_text("#webhook-secret")
        assert rotated.startswith("whsec_")
        assert rotated != secret
        assert "previous one keeps signing beside it for 24 hours" in page.inner_text(".alert.warning")

        # The viewer sees the endpoint and its state, and no form to change them; a forged post is refused.
        viewer.goto(f"/console/sites/{app_key}/settings/webhooks")
        assert viewer.page.inner_text("[data-webhook] [data-url]") == receiver.url
        assert viewer.page.locator("[data-webhook] form, #webhook-url, [data-feed] ~ form").count() == 0
        shown = viewer.page.inner_text("main")
        assert "Only admins add and change webhook endpoints." in shown
        assert "Only admins switch the event feed." in shown
        forged = viewer.page.request.post(
            f"{url}/console/sites/{app_key}/settings/webhooks/feed",
            form={"csrf_token": viewer.csrf_token(), "enabled": "true"},
        )
        assert forged.status == 403
        assert viewer.check("settings-webhooks-viewer") == []

        # The feed switched on (the app records events without an endpoint too), then the endpoint deleted.
        admin.goto(f"/console/sites/{app_key}/settings/webhooks")
        with page.expect_navigation():
            page.click("button:text-is('Switch the event feed on')")
        assert page.inner_text("[data-feed]") == "The event feed is on."
        with page.expect_navigation():
            page.click("[data-webhook] button:text-is('Delete')")
        assert page.inner_text(".alert.success") == "The endpoint was deleted."
        assert page.inner_text("[data-no-webhooks]") == "No endpoints yet."
        feed = httpx.get(f"{url}/v1/apps/{app_key}/events/feed", auth=(app_key, app_secret), timeout=10)
        assert (feed.status_code, feed.json()) == (200, {"enabled": True})
    finally:
        admin.close()
        viewer.close()

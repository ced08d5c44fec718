"""Driving the web console in Chromium: operators made by the CLI, sign-in, screenshots and axe-core.

axe-core (MPL-2.0, from its npm package; version in tests/browser/vendor/axe-core/VERSION) is injected
by the tests only: Clarion never serves it. CLARION_TEST_AXE may point at another axe.min.js.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from clarion.subscriber.proof import AUTH_HEADER
from tests.browser.harness import ARTIFACTS, TIMEOUT_MS
from tests.e2e.processes import Processes
from tests.fakes.push_service import FakePushService, Subscription

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

AXE = Path(os.environ.get("CLARION_TEST_AXE", Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"))
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct horse battery"
STDIN_JSON = ("--password-stdin", "--json")
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')

# The elements that stick out of the screen while their parent does not (a page must not scroll sideways
# on a phone; a table scrolls inside its own box).
WIDER_THAN_SCREEN = """() => {
  if (document.documentElement.scrollWidth <= innerWidth) return [];
  const scrolled = (e) => {
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') return true;
    }
    return false;
  };
  const out = [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > innerWidth && !scrolled(e))
    .map((e) => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().right)}px`);
  return out.length ? out : [`the document, ${document.documentElement.scrollWidth}px`];
}"""

# The violations axe finds on the page, with the selectors of the elements at fault.
AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => n.target.join(' '))}));
}"""


def create_operator(procs: Processes, email: str, role: str, password: str = PASSWORD) -> dict[str, Any]:
    """`clarion users create EMAIL --role ROLE --password-stdin --json`, as an operator types it."""
    done = subprocess.run(
        [sys.executable, "-m", "clarion.cli", "users", "create", email, "--role", role, *STDIN_JSON],
        input=f"{password}\n".encode(),
        env={**os.environ, **procs.env},
        capture_output=True,
        check=True,
        timeout=60,
    )
    created: dict[str, Any] = json.loads(done.stdout)
    return created


@dataclass
class Console:
    """One operator's browser (a fresh context) on the console of the server under test."""

    context: BrowserContext
    page: Page
    url: str

    @classmethod
    def open(cls, browser: Browser, url: str) -> Console:
        # bypass_csp: the console forbids inline scripts, and axe-core is injected as one.
        context = browser.new_context(viewport=DESKTOP, bypass_csp=True)
        context.set_default_timeout(TIMEOUT_MS)
        return cls(context, context.new_page(), url)

    def close(self) -> None:
        self.context.close()

    def goto(self, path: str) -> int:
        response = self.page.goto(f"{self.url}{path}")
        assert response is not None
        return response.status

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        self.goto("/console/sign-in")
        self.page.fill("#email", email)
        self.page.fill("#password", password)
        with self.page.expect_navigation():
            self.page.click("button[type=submit]")
        assert self.page.url == f"{self.url}/console/sites", self.page.content()

    def csrf_token(self) -> str:
        token = self.page.get_attribute("input[name=csrf_token]", "value")
        assert token
        return token

    def check(self, name: str) -> list[dict[str, Any]]:
        """Screenshots at desktop and phone width, and axe-core's serious or critical violations."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"console-{name}-desktop.png"), full_page=True)
        self.page.set_viewport_size(PHONE)
        self.page.screenshot(path=str(ARTIFACTS / f"console-{name}-phone.png"), full_page=True)
        wider = self.page.evaluate(WIDER_THAN_SCREEN)
        self.page.set_viewport_size(DESKTOP)
        assert wider == [], f"{name}: wider than a phone's screen: {wider}"
        if not self.page.evaluate("() => typeof window.axe !== 'undefined'"):
            self.page.add_script_tag(path=str(AXE))
        violations: list[dict[str, Any]] = self.page.evaluate(AXE_RUN)
        return [v for v in violations if v["impact"] in ("serious", "critical")]


def register(
    url: str, fake: FakePushService, app_key: str, vapid_key: str, **user: str
) -> tuple[str, Subscription]:
    """A browser's subscription registered as the Web SDK registers it (`user`: user_id and its
    user_id_hash); its regId."""
    subscription = fake.new_subscription(application_server_key=vapid_key)
    body = {"app_key": app_key, "platform": "web", "subscription": subscription.to_json(), **user}
    answer = httpx.post(f"{url}/sdk/v1/subscribers", json=body, timeout=10)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["regId"]), subscription


def event(url: str, app_key: str, reg_id: str, auth: str, campaign_id: str, kind: str) -> None:
    """A subscriber's engagement (received, clicked, closed) as the service worker reports it."""
    body = {"app_key": app_key, "regId": reg_id, "campaign_id": campaign_id, "type": kind}
    answer = httpx.post(f"{url}/sdk/v1/events", json=body, headers={AUTH_HEADER: auth}, timeout=10)
    assert answer.status_code == 204, answer.text

"""A real headless Chromium on the demo page of a real `clarion serve`, with a stand-in push service.

Chromium cannot reach a real push service here, so the test stands in for one:

- the page's PushManager is replaced (an init script) by one whose subscriptions are the test's own,
  made by FakePushService with real keys, so the server encrypts to keys the fake can decrypt;
- the server delivers to the fake (a local RFC 8030 push service), which decrypts the message;
- the test hands that plaintext to the service worker with the DevTools command
  `ServiceWorker.deliverPushMessage`, as a push service would through the browser.

Notification clicks and closes cannot be made by DevTools: the test dispatches NotificationEvents in
the worker, which runs the worker's own listeners.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.push_service import FakePushService, Subscription
from tests.support import IN_CI

try:
    from playwright.sync_api import Browser, BrowserContext, CDPSession, Page, Worker, sync_playwright
except ImportError:  # reported by require_browser()
    sync_playwright = None  # type: ignore[assignment]

CHROMIUM = os.environ.get("CLARION_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
TIMEOUT_MS = 15_000

# Replaces the page's PushManager: subscribe() hands out the test's subscription (kept in localStorage,
# as a browser keeps its subscription across reloads) and records the applicationServerKey it was given.
FAKE_PUSH_MANAGER = """
(() => {
  const STORE = 'clarion-test-push';
  const initial = %s;
  const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
  const unb64 = (text) => Uint8Array.from(
    atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - text.length %% 4) %% 4)),
    (c) => c.charCodeAt(0));
  const state = () => JSON.parse(localStorage.getItem(STORE) || 'null');
  const save = (value) => localStorage.setItem(STORE, JSON.stringify(value));
  if (!localStorage.getItem(STORE + '-next')) localStorage.setItem(STORE + '-next', JSON.stringify(initial));
  window.__fakePush = {
    // What the browser would hold after the push service renewed the subscription.
    replace(json) {
      save({...state(), json});
      localStorage.setItem(STORE + '-next', JSON.stringify(json));
    },
    subscribedWith() { const s = state(); return s && s.key; },
  };
  function subscription(s) {
    return {
      endpoint: s.json.endpoint,
      expirationTime: null,
      options: {userVisibleOnly: true, applicationServerKey: unb64(s.key).buffer},
      getKey(name) { return unb64(s.json.keys[name]).buffer; },
      toJSON() { return {endpoint: s.json.endpoint, expirationTime: null, keys: {...s.json.keys}}; },
      unsubscribe() { localStorage.removeItem(STORE); return Promise.resolve(true); },
    };
  }
  PushManager.prototype.subscribe = async function (options) {
    if (!options || !options.userVisibleOnly || !options.applicationServerKey) {
      throw new DOMException('userVisibleOnly and applicationServerKey are required', 'NotAllowedError');
    }
    const json = JSON.parse(localStorage.getItem(STORE + '-next'));
    save({json, key: b64(options.applicationServerKey)});
    return subscription(state());
  };
  PushManager.prototype.getSubscription = async function () {
    const s = state();
    return s ? subscription(s) : null;
  };
  PushManager.prototype.permissionState = async function () { return 'granted'; };
})();
"""

# Calls one SDK method and hands back its result, or the rejected error's fields.
SDK_CALL = """async ([name, args]) => {
  try {
    return {ok: await window.Clarion[name](...args)};
  } catch (e) {
    return {error: {name: e.name, code: e.code, message: e.message, field: e.field, status: e.status}};
  }
}"""

NOTIFICATIONS = """async () => {
  const registration = await navigator.serviceWorker.getRegistration('/sdk/v1/');
  const shown = await registration.getNotifications();
  return shown.map((n) => ({
    title: n.title, body: n.body, tag: n.tag, icon: n.icon, image: n.image, data: n.data,
    requireInteraction: n.requireInteraction,
    actions: n.actions.map((a) => ({action: a.action, title: a.title})),
  }));
}"""


def require_browser() -> None:
    """Skip with a clear message where Chromium or Playwright is missing; in CI that is a failure."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    if sync_playwright is None:
        missing.append("the playwright package (pip install -e '.[test]'; no browser download is needed)")
    if not missing:
        return
    message = "browser tests need " + " and ".join(missing)
    if IN_CI:
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = 15) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class ServerApp:
    """The server under test and one app created with `clarion apps create`."""

    url: str
    app_key: str
    app_secret: str
    vapid_public_key: str
    identity_secret_key: str
    database: Path  # the server's SQLite file

    def user_ids(self, reg_id: str) -> tuple[str | None, str | None]:
        """The ids the server bound the subscriber to (no API shows them to an app: read from its file)."""
        with contextlib.closing(sqlite3.connect(self.database)) as connection:
            row = connection.execute(
                "SELECT user_id, external_user_id FROM subscribers WHERE reg_id = ?", (reg_id,)
            ).fetchone()
        assert row is not None, reg_id
        return row[0], row[1]

    @property
    def auth(self) -> tuple[str, str]:
        return (self.app_key, self.app_secret)

    def alias(self, reg_id: str) -> dict[str, str]:
        answer = httpx.get(f"{self.url}/api/v3/alias", params={"regId": reg_id}, auth=self.auth, timeout=10)
        assert answer.status_code == 200, answer.text
        body: dict[str, str] = answer.json()
        return body

    def push(self, body: dict[str, Any]) -> str:
        answer = httpx.post(f"{self.url}/api/v3/push", json=body, auth=self.auth, timeout=10)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["id"])

    def stats(self, campaign_id: str) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/api/v3/messages/{campaign_id}", auth=self.auth, timeout=10)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def wait_for_stats(self, campaign_id: str, expected: dict[str, Any]) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def matches() -> bool:
            nonlocal last
            last = self.stats(campaign_id)
            return last == expected

        try:
            wait_until(matches, f"stats {expected}")
        except AssertionError:
            assert last == expected
        return last


@dataclass
class Visit:
    """One browser profile (a fresh context: its own IndexedDB, service workers and permissions)."""

    context: BrowserContext
    page: Page
    server: ServerApp
    fake: FakePushService
    subscription: Subscription
    cdp: CDPSession
    registrations: list[dict[str, Any]] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Browser, server: ServerApp, fake: FakePushService) -> Visit:
        subscription = fake.new_subscription(application_server_key=server.vapid_public_key)
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        context.grant_permissions(["notifications"], origin=server.url)
        context.add_init_script(FAKE_PUSH_MANAGER % json.dumps(subscription.to_json()))
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        visit = cls(context, page, server, fake, subscription, cdp)
        page.on("console", lambda message: visit.console.append(f"{message.type}: {message.text}"))
        cdp.on(
            "ServiceWorker.workerRegistrationUpdated",
            lambda e: visit.registrations.extend(e["registrations"]),
        )
        cdp.send("ServiceWorker.enable")
        return visit

    def close(self) -> None:
        self.context.close()

    def open_demo(self) -> None:
        self.page.goto(f"{self.server.url}/sdk/v1/demo?appKey={self.server.app_key}")
        # The demo page pushes ['init', …] and a callback before clarion.js has loaded; they ran.
        self.wait_for("document.body.dataset.state !== undefined")

    def wait_for(self, expression: str, timeout_s: float = 15) -> None:
        """Polls from here: the demo page's CSP forbids the eval() that page.wait_for_function uses."""
        wait_until(lambda: self.page.evaluate(f"() => {expression}"), expression, timeout_s)

    def sdk(self, name: str, *args: Any) -> Any:
        result = self.page.evaluate(SDK_CALL, [name, list(args)])
        assert "ok" in result, f"Clarion.{name}{args} failed: {result['error']}"
        return result["ok"]

    def sdk_error(self, name: str, *args: Any) -> dict[str, Any]:
        result = self.page.evaluate(SDK_CALL, [name, list(args)])
        assert "error" in result, f"Clarion.{name}{args} should have failed: {result}"
        error: dict[str, Any] = result["error"]
        return error

    def subscribe(self) -> str:
        reg_id: str = self.sdk("subscribe")["regId"]
        return reg_id

    def worker(self) -> Worker:
        workers = [w for w in self.context.service_workers if w.url.endswith("/sdk/v1/sw.js")]
        assert workers, "the service worker is not running"
        return workers[-1]

    def registration_id(self) -> str:
        scope = f"{self.server.url}/sdk/v1/"

        def found() -> str | None:
            live = [r for r in self.registrations if r["scopeURL"] == scope and not r["isDeleted"]]
            return live[-1]["registrationId"] if live else None

        registration: str = wait_until(found, f"a service worker registration for {scope}")
        return registration

    def deliver(self, plaintext: bytes) -> None:
        """What a push service does through the browser: the decrypted message reaches the worker."""
        self.cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": self.server.url, "registrationId": self.registration_id(), "data": plaintext.decode()},
        )

    def notifications(self) -> list[dict[str, Any]]:
        shown: list[dict[str, Any]] = self.page.evaluate(NOTIFICATIONS)
        return shown

    def received(self, count: int, subscription: Subscription | None = None) -> list[bytes]:
        """The plaintexts the fake push service decrypted for this browser's subscription."""
        sub_id = (subscription or self.subscription).sub_id
        wait_until(
            lambda: len(self.fake.received_for(sub_id)) >= count, f"{count} message(s) at the push service"
        )
        return [message.payload for message in self.fake.received_for(sub_id)]

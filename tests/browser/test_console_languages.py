"""The compose page's per-language content in a real Chromium against `clarion serve`: an error shown
on the language row's input, then a campaign whose French subscriber gets the French texts and whose
other subscriber the main ones (axe-core, screenshots at two widths)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

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


def _shown(fake: FakePushService, sub_id: str) -> tuple[Any, Any, Any]:
    [received] = fake.received_for(sub_id)
    payload = json.loads(received.payload)
    return payload["title"], payload["message"], payload["redirect_url"]


def test_an_editor_composes_a_campaign_with_content_per_language(
    console: Console, server: tuple[Processes, Server], app: ServerApp, push_service: FakePushService
) -> None:
    procs, running = server
    page = console.page
    _, french = register(running.url, push_service, app.app_key, app.vapid_public_key, language="fr-FR")
    _, other = register(running.url, push_service, app.app_key, app.vapid_public_key, language="de")
    create_operator(procs, "polyglot@example.com", "editor")
    console.sign_in("polyglot@example.com")

    console.goto(f"/console/sites/{app.app_key}/compose")
    page.fill("#payload-title", "Hello")
    page.fill("#payload-message", "The main text")
    page.fill("#payload-redirect_url", "https://example.com/en")
    page.fill("#default_language", "en")
    page.fill("#languages-0-tag", "fr")
    page.fill("#languages-0-title", "Bonjour")
    with page.expect_navigation():
        page.click("button[data-send]")
    # No message for French: the error is shown on that row's message, the form keeps what was typed.
    message = page.locator("#languages-0-message")
    expect(message).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[id="languages[0].message-error"]')).to_have_text(
        "languages[0].message: a language needs its message"
    )
    assert (page.input_value("#languages-0-tag"), page.input_value("#languages-0-title")) == ("fr", "Bonjour")
    assert console.check("compose-language-error") == []

    message.fill("Le texte français")
    page.fill("#languages-0-redirect_url", "https://example.com/fr")
    with page.expect_navigation():
        page.click("button[data-send]")
    assert "/campaigns/" in page.url, page.inner_text("main")
    wait_until(
        lambda: len(push_service.received_for(french.sub_id) + push_service.received_for(other.sub_id)) == 2,
        "both sent",
        timeout_s=20,
    )
    assert _shown(push_service, french.sub_id) == ("Bonjour", "Le texte français", "https://example.com/fr")
    assert _shown(push_service, other.sub_id) == ("Hello", "The main text", "https://example.com/en")

"""The compose page's per-language content and A/B test in a real Chromium against `clarion serve`:
errors shown on the input they are about, then campaigns whose subscribers get their language's texts
or their variant's (axe-core, screenshots at two widths)."""

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
    # The campaign's page shows what each language gets.
    rows = page.locator("table[data-languages] tbody tr")
    assert rows.all_inner_texts() == [
        "en (default)\tHello\tThe main text\thttps://example.com/en",
        "fr\tBonjour\tLe texte français\thttps://example.com/fr",
    ]
    expect(page.locator("[data-languages-note]")).to_have_text(
        "Each language's subscribers get its texts (a text it leaves out is the default's);"
        " everyone else gets the default language (en) content."
    )
    assert console.check("campaign-languages") == []


def test_an_editor_composes_an_ab_test_and_each_recipient_gets_one_variant(
    console: Console, server: tuple[Processes, Server], app: ServerApp, push_service: FakePushService
) -> None:
    procs, running = server
    page = console.page
    subs = [register(running.url, push_service, app.app_key, app.vapid_public_key)[1] for _ in range(40)]
    create_operator(procs, "tester@example.com", "editor")
    console.sign_in("tester@example.com")

    console.goto(f"/console/sites/{app.app_key}/compose")
    page.fill("#payload-title", "Variant A")
    page.fill("#payload-message", "The first wording")
    page.fill("#payload-redirect_url", "https://example.com/a")
    page.fill("#ab_test-variants-0-percent", "50")
    page.fill("#ab_test-variants-1-percent", "60")
    page.fill("#ab_test-variants-1-title", "Variant B")
    page.fill("#ab_test-variants-1-message", "The second wording")
    page.fill("#ab_test-variants-1-redirect_url", "https://example.com/b")
    with page.expect_navigation():
        page.click("button[data-send]")
    expect(page.locator('[id="ab_test-error"]')).to_have_text(
        "ab_test: the variants' and the holdout's percents add up to more than 100"
    )
    assert console.check("compose-ab-error") == []

    page.fill("#ab_test-variants-1-percent", "40")
    page.fill("#ab_test-variants-1-redirect_url", "not a link")
    with page.expect_navigation():
        page.click("button[data-send]")
    link = page.locator("#ab_test-variants-1-redirect_url")
    expect(link).to_have_attribute("aria-invalid", "true")
    assert "ab_test.variants[1].redirect_url" in page.inner_text(
        '[id="ab_test.variants[1].redirect_url-error"]'
    )

    link.fill("https://example.com/b")
    page.fill("#ab_test-holdout_percent", "10")
    page.fill("#ab_test-winner_after_minutes", "30")
    with page.expect_navigation():
        page.click("button[data-send]")
    # The percents add up to 100: no rest for a winner.
    expect(page.locator('[id="ab_test.winner_after_minutes-error"]')).to_have_text(
        "ab_test.winner_after: leaves nobody for the winner: the percents add up to 100"
    )
    page.fill("#ab_test-winner_after_minutes", "")
    with page.expect_navigation():
        page.click("button[data-send]")
    assert "/campaigns/" in page.url, page.inner_text("main")
    holdout = 0

    def settled() -> bool:
        return sum(len(push_service.received_for(s.sub_id)) for s in subs) >= 30

    wait_until(settled, "the variants sent", timeout_s=30)
    got: dict[str, list[tuple[Any, Any]]] = {}
    for sub in subs:
        received = push_service.received_for(sub.sub_id)
        assert len(received) <= 1
        if not received:
            holdout += 1
            continue
        payload = json.loads(received[0].payload)
        got.setdefault(payload["title"], []).append((payload["message"], payload["redirect_url"]))
    assert set(got) == {"Variant A", "Variant B"}, got
    assert set(got["Variant A"]) == {("The first wording", "https://example.com/a")}
    assert set(got["Variant B"]) == {("The second wording", "https://example.com/b")}
    assert holdout == 40 - len(got["Variant A"]) - len(got["Variant B"])

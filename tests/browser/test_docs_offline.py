"""/docs and /redoc render in a real headless Chromium from Clarion's own assets: every request the
page makes goes to the server itself (none to a CDN or a font service)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tests.browser.harness import TIMEOUT_MS
from tests.e2e.processes import Processes, Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


def _visit(browser: Browser, url: str, ready: str, screenshot: Path) -> list[str]:
    """The URLs the page requested until `ready` appeared; a screenshot of it saved."""
    context = browser.new_context()
    requested: list[str] = []
    try:
        page: Page = context.new_page()
        page.on("request", lambda request: requested.append(request.url))
        page.goto(url, timeout=TIMEOUT_MS)
        page.wait_for_selector(ready, timeout=TIMEOUT_MS)
        assert page.title() == "Clarion API"
        page.screenshot(path=str(screenshot))
    finally:
        context.close()
    return requested


def _origins_and_paths(requested: list[str]) -> tuple[set[str], list[str]]:
    parts = [urlsplit(url) for url in requested]
    return {f"{p.scheme}://{p.netloc}" for p in parts}, sorted({p.path for p in parts})


def test_swagger_ui_renders_offline(
    browser: Browser, server: tuple[Processes, Server], artifacts: Path
) -> None:
    running = server[1]
    # Swagger UI has fetched /openapi.json and drawn the operations of the surfaces.
    ready = '[data-path="/api/v3/push"]'
    requested = _visit(browser, f"{running.url}/docs", ready, artifacts / "docs-offline.png")
    assert _origins_and_paths(requested) == (
        {running.url},
        [
            "/docs",
            "/docs/assets/favicon.png",
            "/docs/assets/swagger-ui-bundle.js",
            "/docs/assets/swagger-ui.css",
            "/openapi.json",
        ],
    )


def test_redoc_renders_offline(browser: Browser, server: tuple[Processes, Server], artifacts: Path) -> None:
    running = server[1]
    ready = "text=Self-hosted push notifications"  # the API's description, drawn from /openapi.json
    requested = _visit(browser, f"{running.url}/redoc", ready, artifacts / "redoc-offline.png")
    # blob: URLs are ReDoc's workers; its maker's logo (cdn.redoc.ly) is no longer asked for.
    elsewhere = [url for url in requested if not url.startswith((running.url, f"blob:{running.url}/"))]
    assert elsewhere == []
    origins, paths = _origins_and_paths([url for url in requested if url.startswith(running.url)])
    assert origins == {running.url}
    assert paths == [
        "/docs/assets/favicon.png",
        "/docs/redoc/redoc.standalone.js",
        "/openapi.json",
        "/redoc",
    ]

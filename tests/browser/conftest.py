"""Fixtures for the browser tests: one Chromium, one `clarion serve` and one push service per module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.harness import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ServerApp,
    Visit,
    require_browser,
    sync_playwright,
)
from tests.e2e.conftest import engine_env
from tests.e2e.processes import Processes, Server
from tests.fakes.push_service import FakePushService

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_browser()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def push_service() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Processes, Server]]:
    require_browser()  # no server to start for tests that will skip
    root = tmp_path_factory.mktemp("browser")
    procs = Processes(root, engine_env(f"sqlite:///{root / 'clarion.db'}"))
    try:
        yield procs, procs.server()
    finally:
        procs.close()


@pytest.fixture
def app(server: tuple[Processes, Server]) -> ServerApp:
    """A new app on the server, so that each test starts with no subscribers and no campaigns."""
    procs, running = server
    created = json.loads(procs.cli("apps", "create", "browser", "--plan", "unlimited", "--json"))
    return ServerApp(
        running.url,
        created["app_key"],
        created["app_secret"],
        created["vapid_public_key"],
        created["identity_secret_key"],
        procs.tmp_path / "clarion.db",
    )


@pytest.fixture
def visit(browser: Browser, app: ServerApp, push_service: FakePushService) -> Iterator[Visit]:
    opened = Visit.open(browser, app, push_service)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS

"""Fixtures shared by the HTTP-level test packages (imported by their conftest.py files)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from clarion.app import create_app
from clarion.config import Settings
from tests.conftest import Api
from tests.fakes.push_service import FakePushService


@pytest.fixture(scope="session")
def fake() -> Iterator[FakePushService]:
    """A local Web Push service: subscriptions with real keys, and a place for deliveries to land."""
    with FakePushService() as service:
        yield service


@pytest.fixture
async def quiet_api(settings: Settings) -> AsyncIterator[Api]:
    """The real HTTP API without the in-process delivery engine: for tests of requests and answers
    only (nothing is delivered, campaigns stay as created), and quicker to start and stop."""
    app = create_app(settings, run_engine=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            yield Api(client, settings)

"""CLARION_DELIVERY=sink: campaigns run to the end, counted as delivered, and nothing is sent."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from clarion.config import Settings
from tests.conftest import Api, make_settings
from tests.fakes.push_service import FakePushService
from tests.helpers import create_app, push, subscribe, wait_for_status


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, delivery="sink")


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


async def test_a_web_push_campaign_is_sent_to_no_push_service(
    api: Api, fake: FakePushService, caplog: pytest.LogCaptureFixture
) -> None:
    keys = await create_app(api.settings)
    for _ in range(3):
        await subscribe(api.client, keys, fake)
    campaign_id = await push(api.client, keys, ttl=600)
    final = await wait_for_status(api.client, keys, campaign_id, "SENT")
    assert final == {"status": "SENT", "send": 3, "received": 0, "clicked": 0, "closed": 0}
    assert fake.requests == []
    assert fake.received == []


async def test_sink_mode_is_announced_loudly(caplog: pytest.LogCaptureFixture) -> None:
    from clarion.provider.registry import build_providers

    with caplog.at_level(logging.WARNING, logger="clarion.provider"):
        providers = build_providers(Settings(database_url="sqlite://", delivery="sink"))
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "SINK MODE (CLARION_DELIVERY=sink): no message is sent to any push service; every message is"
            " built and recorded as delivered",
        )
    ]
    assert sorted(providers) == ["adm", "android", "ios", "web", "wns"]
    for provider in providers.values():
        await provider.close()

"""Forged push addresses are refused at registration; real push services' addresses are not."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import yarl
from pyreqwest.http import Url
from sqlalchemy import func, select

from clarion import errors
from clarion.config import Settings
from clarion.db import Database
from clarion.models import Subscriber
from clarion.subscriber.endpoint import check_push_url
from tests.app_tenant.factory import new_app, web_body
from tests.conftest import Api, make_settings
from tests.fakes.push_service import FakePushService
from tests.subscriber.forged_addresses import FORGED, FORGED_HOSTS, LEGITIMATE


@pytest.fixture
def settings(database_url: str) -> Settings:
    # No abuse limit: the whole corpus comes from one client.
    return make_settings(
        database_url, push_hosts=",".join(sorted(FORGED_HOSTS)), subscriber_register_per_ip_per_minute=0
    )


def test_the_corpus_is_large_and_has_no_repeats() -> None:
    assert len(FORGED) >= 100
    assert len(set(FORGED)) == len(FORGED)


@pytest.mark.parametrize("url", FORGED)
def test_the_validator_refuses_every_forged_address(url: str) -> None:
    with pytest.raises(errors.InvalidField) as caught:
        check_push_url(url, FORGED_HOSTS, "subscription.endpoint")
    assert caught.value.field == "subscription.endpoint"
    assert caught.value.message.startswith("subscription.endpoint ")


@pytest.mark.parametrize("url", LEGITIMATE)
def test_the_validator_accepts_real_push_services(url: str) -> None:
    check_push_url(url, FORGED_HOSTS, "token")


@pytest.mark.parametrize("url", LEGITIMATE)
def test_every_parser_reads_an_accepted_address_alike(url: str) -> None:
    """What is accepted is plain enough that urllib, yarl (aiohttp) and the Rust client agree on it."""
    split, lenient, client = urlsplit(url), yarl.URL(url), Url(url)
    assert split.hostname == lenient.host == client.host_str == url.split("/")[2].lower()
    assert (split.port, lenient.port, client.port_or_known_default) == (None, 443, 443)
    assert str(client) == url.replace(url.split("/")[2], url.split("/")[2].lower(), 1)


async def count_subscribers(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count(Subscriber.id)))).scalar_one())


async def test_registration_refuses_every_forged_address(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    keys = fake.new_subscription().to_json()["keys"]
    for url in FORGED:
        web = web_body(tenant.app_key, {"endpoint": url, "keys": keys})
        answer = await quiet_api.client.post("/sdk/v1/subscribers", json=web)
        assert answer.status_code == 422, (url, answer.text)
        body = answer.json()
        assert (body["error"], body["field"]) == ("invalid_field", "subscription.endpoint"), url
        assert body["message"].startswith("subscription.endpoint"), url

        wns = {"app_key": tenant.app_key, "platform": "wns", "token": url}
        answer = await quiet_api.client.post("/sdk/v1/subscribers", json=wns)
        assert answer.status_code == 422, (url, answer.text)
        assert (answer.json()["error"], answer.json()["field"]) == ("invalid_field", "token"), url
    assert await count_subscribers(db) == 0


async def test_registration_accepts_real_push_services(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    # Addresses are unique per app, whatever the platform: the channel URIs go to a second app.
    tenant, windows = await new_app(db), await new_app(db, name="windows app")
    for url in LEGITIMATE[:-1]:  # the last one differs from another only by the host's case
        keys = fake.new_subscription().to_json()["keys"]
        web = web_body(tenant.app_key, {"endpoint": url, "keys": keys})
        answer = await quiet_api.client.post("/sdk/v1/subscribers", json=web)
        assert answer.status_code == 201, (url, answer.text)
        wns = {"app_key": windows.app_key, "platform": "wns", "token": url}
        answer = await quiet_api.client.post("/sdk/v1/subscribers", json=wns)
        assert answer.status_code == 201, (url, answer.text)
    assert await count_subscribers(db) == 2 * (len(LEGITIMATE) - 1)

"""Abuse limits on the public subscriber API: per client address and per app on registration and events
(429 with Retry-After), and a cap on the tags one subscriber holds (issue #19)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from clarion.app import create_app
from clarion.config import Settings
from clarion.db import Database
from clarion.subscriber.limits import RateLimiter
from clarion.subscriber.service import MAX_TAGS_PER_SUBSCRIBER
from tests.app_tenant.factory import (
    Tenant,
    native_error,
    new_app,
    push,
    subscribe_with_proof,
    vendor_error,
    wait_for_stats,
    web_body,
)
from tests.conftest import Api, make_settings
from tests.fakes.push_service import FakePushService

LIMITED = native_error("rate_limit_exceeded", "Rate Limit Exceeded")

Clients = Callable[[str], httpx.AsyncClient]


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Clients]:
    """The app, and a client per remote address (what the limits key on)."""
    app = create_app(settings, run_engine=False)
    opened: list[httpx.AsyncClient] = []

    def client(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        opened.append(httpx.AsyncClient(transport=transport, base_url="http://clarion.test"))
        return opened[-1]

    async with app.router.lifespan_context(app):
        try:
            yield client
        finally:
            for each in opened:
                await each.aclose()


async def register(client: httpx.AsyncClient, tenant: Tenant, fake: FakePushService) -> httpx.Response:
    return await client.post(
        "/sdk/v1/subscribers", json=web_body(tenant.app_key, fake.new_subscription().to_json())
    )


def assert_limited(answer: httpx.Response) -> None:
    assert (answer.status_code, answer.json()) == (429, LIMITED)
    # One token a minute / 3 per minute: back within 20 s, announced in whole seconds.
    assert 1 <= int(answer.headers["retry-after"]) <= 20


async def test_registration_per_client_address(
    database_url: str, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    settings = make_settings(database_url, subscriber_register_per_ip_per_minute=3)
    async with serving(settings) as client:
        one, other = client("203.0.113.7"), client("203.0.113.8")
        for _ in range(3):
            assert (await register(one, tenant, fake)).status_code == 201
        assert_limited(await register(one, tenant, fake))
        # Refused before the body is read: even a bad body counts as a request, and is refused alike.
        assert_limited(await one.post("/sdk/v1/subscribers", content=b"{"))
        assert (await register(other, tenant, fake)).status_code == 201

        # An IPv6 client is its /64: another address in it shares the budget, another /64 does not.
        first, same_net, next_net = client("2001:db8::1"), client("2001:db8::ff"), client("2001:db8:0:1::1")
        for _ in range(3):
            assert (await register(first, tenant, fake)).status_code == 201
        assert_limited(await register(same_net, tenant, fake))
        assert (await register(next_net, tenant, fake)).status_code == 201
        # An IPv4-mapped IPv6 address is that IPv4 client.
        assert_limited(await register(client("::ffff:203.0.113.7"), tenant, fake))


async def test_registration_per_app(database_url: str, db: Database, fake: FakePushService) -> None:
    busy, quiet = await new_app(db), await new_app(db, name="quiet")
    settings = make_settings(
        database_url, subscriber_register_per_ip_per_minute=0, subscriber_register_per_app_per_minute=3
    )
    async with serving(settings) as client:
        for index in range(3):
            assert (await register(client(f"198.51.100.{index}"), busy, fake)).status_code == 201
        assert_limited(await register(client("198.51.100.99"), busy, fake))
        assert (await register(client("198.51.100.99"), quiet, fake)).status_code == 201


async def test_events_per_client_address_and_per_app(
    database_url: str, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db, plan="unlimited")
    settings = make_settings(
        database_url, subscriber_events_per_ip_per_minute=3, subscriber_events_per_app_per_minute=5
    )
    engine_app = create_app(settings)  # the engine sends the campaign: events need a sent campaign
    async with engine_app.router.lifespan_context(engine_app):
        transport = httpx.ASGITransport(app=engine_app, client=("192.0.2.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as setup:
            reg_id, held = await subscribe_with_proof(setup, tenant, fake)
            campaign_id = (await push(setup, tenant, audience={"tokens": [reg_id]})).json()["id"]
            sent = {"status": "SENT", "send": 1, "received": 0, "clicked": 0, "closed": 0}
            await wait_for_stats(setup, tenant, campaign_id, sent)

    async with serving(settings) as client:
        body = {"app_key": tenant.app_key, "regId": reg_id, "campaign_id": campaign_id, "type": "received"}

        async def report(address: str) -> httpx.Response:
            return await client(address).post("/sdk/v1/events", json=body, headers=held)

        for _ in range(3):
            assert (await report("192.0.2.10")).status_code == 204
        assert_limited(await report("192.0.2.10"))
        # Another address, until the app's 5 a minute are spent (the refused one took none of them).
        assert (await report("192.0.2.11")).status_code == 204
        assert (await report("192.0.2.12")).status_code == 204
        assert_limited(await report("192.0.2.13"))


def test_a_bucket_refills_at_its_rate_and_remembers_a_bounded_number_of_clients() -> None:
    now = [1000.0]
    limiter = RateLimiter(per_minute=6, max_keys=2, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(6)] == [0.0] * 6
    assert limiter.take("a") == 10.0  # one token every 10 s
    now[0] += 5
    assert limiter.take("a") == 5.0
    now[0] += 5
    assert limiter.take("a") == 0.0
    now[0] += 600  # long idle: the bucket holds at most a minute's worth
    assert [limiter.take("a") for _ in range(7)] == [0.0] * 6 + [10.0]

    limiter.take("b")
    limiter.take("c")  # a third client: the least recently seen ("a") is forgotten
    assert sorted(limiter.buckets) == ["b", "c"]
    assert limiter.take("a") == 0.0  # back with a full bucket
    assert RateLimiter(per_minute=0, max_keys=1).take("x") == 0.0  # 0: no limit


async def test_a_subscriber_holds_at_most_100_tags(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    assert MAX_TAGS_PER_SUBSCRIBER == 100
    tenant = await new_app(db)
    client = quiet_api.client
    reg_id, held = await subscribe_with_proof(client, tenant, fake)
    path, params = f"/sdk/v1/subscribers/{reg_id}/tags", {"app_key": tenant.app_key}

    async def call(method: str, body: Any = None, suffix: str = "") -> httpx.Response:
        return await client.request(method, path + suffix, params=params, json=body, headers=held)

    full = [f"t{index:03}" for index in range(100)]
    answer = await call("PUT", {"tags": full})
    assert (answer.status_code, len(answer.json()["tags"])) == (200, 100)
    answer = await call("POST", {"tag": "one-more"})
    assert (answer.status_code, answer.json()) == (
        422,
        native_error("invalid_field", "tag: a subscriber holds at most 100 tags", "tag"),
    )
    # A tag it has already is no new tag (in any spelling).
    assert (await call("POST", {"tag": "T000"})).status_code == 200
    # The v3 API's tag call has the same cap, in the vendor's body.
    v3 = await client.post("/api/v3/tag", params={"regId": reg_id, "name": "one-more"}, auth=tenant.auth)
    assert (v3.status_code, v3.json()) == (
        422,
        vendor_error("name: a subscriber holds at most 100 tags", "name"),
    )
    # Removing one makes room for one.
    assert (await call("DELETE", suffix="/t099")).status_code == 200
    answer = await call("POST", {"tag": "one-more"})
    assert (answer.status_code, len(answer.json()["tags"])) == (200, 100)
    assert "one-more" in answer.json()["tags"]

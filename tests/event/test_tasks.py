"""Webhook delivery in process, with an injected clock: back-off doubling, a batch given up after
24 hours of failures, recording only for apps that want events, a name resolving to a forbidden
address refused at connect time, and signatures checked against the specification's own example."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from clarion.app_tenant import service as apps
from clarion.config import Settings
from clarion.db import Database
from clarion.event import service, signing
from clarion.event.sender import Sender
from clarion.event.tasks import WebhookTasks, backoff_s
from clarion.event.types import EventType
from clarion.models import AppEvent, WebhookEndpoint
from clarion.netpolicy import AddressPolicy
from clarion.provider.guard import GuardedClients
from clarion.provider.httpio import reqwest_builder


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Receiver:
    url: str
    statuses: list[int]
    bodies: list[tuple[dict[str, str], bytes]]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver("", [], [])

    async def hook(request: web.Request) -> web.Response:
        found.bodies.append((dict(request.headers), await request.read()))
        return web.Response(status=found.statuses.pop(0) if found.statuses else 204)

    server = web.Application()
    server.router.add_post("/hook", hook)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}/hook"
    yield found
    await runner.cleanup()


class NoSpawn:
    """The runner's registry, unused: run_once sends in place."""

    def spawn(self, work: Any, name: str) -> None:
        raise AssertionError("run_once spawns nothing")


async def _tasks(settings: Settings, db: Database, clock: Clock) -> WebhookTasks:
    tasks = WebhookTasks(
        settings.model_copy(update={"outbound_allow": "127.0.0.1/32"}),
        db,
        NoSpawn(),  # type: ignore[arg-type]
        clock=clock,
    )
    await tasks.open()
    return tasks


async def _app_with_endpoint(db: Database, url: str) -> tuple[int, int, str]:
    policy = AddressPolicy.from_settings("127.0.0.1/32")
    async with db.session() as session:
        app = await apps.create(session, "hooks")
        created = await service.create_endpoint(session, app.app_id, url, [], None, True, policy)
    return app.app_id, created.endpoint.id, created.secret


async def _record(db: Database, app_id: int, at: datetime, count: int) -> None:
    async with db.session() as session:
        rows = [(app_id, EventType.CAMPAIGN_STARTED, at, {"campaign_id": str(n)}) for n in range(count)]
        await service.record_many(session, rows)


async def _endpoint(db: Database, endpoint_id: int) -> WebhookEndpoint:
    async with db.session() as session:
        found = await session.get(WebhookEndpoint, endpoint_id)
        assert found is not None
        return found


async def test_back_off_doubles_then_a_batch_is_given_up_after_24_hours(
    settings: Settings, db: Database, receiver: Receiver
) -> None:
    clock = Clock()
    tasks = await _tasks(settings, db, clock)
    app_id, endpoint_id, _ = await _app_with_endpoint(db, receiver.url)
    await _record(db, app_id, clock.now, 3)
    assert await tasks.run_once() == 0  # younger than the settle second: not read yet
    clock.advance(2)
    receiver.statuses = [500] * 100
    waits = []
    for _ in range(4):
        assert await tasks.run_once() == 1
        endpoint = await _endpoint(db, endpoint_id)
        waits.append((endpoint.next_attempt_at.replace(tzinfo=UTC) - clock.now).total_seconds())
        assert await tasks.run_once() == 0  # not due before its back-off
        clock.advance(waits[-1])
    base = settings.webhook_retry_base_s
    assert waits == [base, 2 * base, 4 * base, 8 * base]
    assert (endpoint.attempts, endpoint.last_error) == (4, "HTTP 500")
    assert endpoint.failing_since is not None
    # Failing for 24 hours: the batch is given up and the cursor moves past it.
    clock.advance(24 * 3600)
    assert await tasks.run_once() == 1
    endpoint = await _endpoint(db, endpoint_id)
    assert (endpoint.attempts, endpoint.failing_since, endpoint.last_error) == (0, None, "given up: HTTP 500")
    receiver.statuses = []
    await _record(db, app_id, clock.now, 1)
    clock.advance(2)
    assert await tasks.run_once() == 1
    events = json.loads(receiver.bodies[-1][1])["data"]["events"]
    assert [e["data"] for e in events] == [{"campaign_id": "0"}]
    assert len(receiver.bodies) == 6
    assert backoff_s(30, base) == 3600.0
    await tasks.close()


async def test_only_apps_that_want_events_record_them(settings: Settings, db: Database) -> None:
    async with db.session() as session:
        quiet = await apps.create(session, "no endpoint")
        fed = await apps.create(session, "feed on")
        await service.switch_feed(session, fed.app_id, True)
    now = datetime.now(UTC)
    async with db.session() as session:
        await service.record_many(
            session,
            [
                (quiet.app_id, EventType.CAMPAIGN_STARTED, now, {}),
                (fed.app_id, EventType.CAMPAIGN_STARTED, now, {"campaign_id": "1"}),
            ],
        )
        stored = (
            await session.execute(select(AppEvent.app_id, func.count()).group_by(AppEvent.app_id))
        ).all()
    assert [tuple(row) for row in stored] == [(fed.app_id, 1)]


async def test_a_name_resolving_to_a_forbidden_address_is_refused_at_connect_time() -> None:
    async def private(host: str, port: int) -> list[str]:
        return ["10.1.2.3"]

    def builder() -> Any:
        return reqwest_builder(ca_file=None, timeout_s=2, connect_timeout_s=2)

    sender = Sender(GuardedClients(AddressPolicy.from_settings(""), builder, resolve=private), 2)
    answer = await sender.post("http://hooks.example.com/x", {}, b"{}")
    assert answer.failure == (
        "refused by the outbound address policy: hooks.example.com resolves to 10.1.2.3, 10.0.0.0/8 (private)"
    )
    await sender.aclose()


def test_signatures_match_the_specification_example() -> None:
    # The example of the Standard Webhooks specification (spec/standard-webhooks.md, "Signature scheme").
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    at = datetime.fromtimestamp(1614265330, UTC)
    body = '{"test": 2432232314}'
    headers = signing.headers(msg_id, at, body, [secret])
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert headers["webhook-timestamp"] == "1614265330"
    two = signing.headers(msg_id, at, body, [signing.new_secret(), secret])
    assert two["webhook-signature"].split(" ")[1] == headers["webhook-signature"]
    assert len(Webhook(signing.new_secret())._whsecret) == signing.SECRET_BYTES


async def test_rotation_keeps_the_previous_secret_signing_for_the_overlap(db: Database) -> None:
    _, endpoint_id, first = await _app_with_endpoint(db, "https://hooks.example.com/x")
    async with db.session() as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        _, second = await service.rotate_secret(session, endpoint.app_id, endpoint_id, 60)
        now = datetime.now(UTC)
        assert service.signing_secrets(session, endpoint, now) == [second, first]
        assert service.signing_secrets(session, endpoint, now + timedelta(seconds=61)) == [second]
    await asyncio.sleep(0)


async def test_endpoint_states_count_what_waits_and_when_delivery_got_to(
    settings: Settings, db: Database, receiver: Receiver
) -> None:
    clock = Clock()
    tasks = await _tasks(settings, db, clock)
    app_id, first_id, _ = await _app_with_endpoint(db, receiver.url)
    clock.now = recorded_at = datetime.now(UTC)  # after the endpoint was added (its real creation time)
    await _record(db, app_id, recorded_at, 3)

    async def states() -> list[tuple[int, int, datetime | None]]:
        async with db.session() as session:
            found = await service.endpoint_states(session, app_id, 10)
        return [(s.endpoint.id, s.waiting, s.delivered_through) for s in found]

    assert await states() == [(first_id, 3, None)]
    clock.advance(2)
    assert await tasks.run_once() == 1
    policy = AddressPolicy.from_settings("127.0.0.1/32")
    async with db.session() as session:
        second = await service.create_endpoint(session, app_id, receiver.url, [], None, False, policy)
    # The new endpoint starts past the recorded events: none waits, none was delivered to it.
    assert await states() == [(first_id, 0, recorded_at), (second.endpoint.id, 0, None)]
    await _record(db, app_id, clock.now, 2)
    assert await states() == [(first_id, 2, recorded_at), (second.endpoint.id, 2, None)]
    await tasks.close()

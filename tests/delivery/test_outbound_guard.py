"""The connect-time address check through the whole delivery path (docs/security.md, "Outbound
addresses"): a subscriber registered on a listed host name whose name resolves, at send time, to a
forbidden address is refused then, and nothing reaches that address.

DNS is stood in for by replacing `clarion.provider.guard.system_resolve`, the resolver the providers'
guard asks; the names exist in no real DNS, so without the guard the client could not reach them at
all (and would report a transport error to retry, not a refusal).
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from clarion.config import Settings
from clarion.db import Database
from clarion.models import Delivery, Subscriber
from clarion.provider import guard
from tests.conftest import Api, make_settings
from tests.fakes.push_service import FakePushService, Subscription
from tests.helpers import AppKeys, create_app, push, subscribe, wait_for_status

ANSWERS = {"push.test": ["127.0.0.2"], "meta.test": ["169.254.169.254"]}


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


@pytest.fixture
def decoy() -> Iterator[socket.socket]:
    """A listener on 127.0.0.2, where push.test resolves: a connection would wait in its backlog."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        sock.listen()
        sock.setblocking(False)
        yield sock


@pytest.fixture
def settings(database_url: str, decoy: socket.socket) -> Settings:
    port = decoy.getsockname()[1]
    return make_settings(database_url, push_hosts=f"127.0.0.1,push.test:{port},meta.test:{port}")


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    questions: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        questions.append(host)
        if host not in ANSWERS:
            raise guard.ResolveFailed(f"cannot resolve {host}")
        return ANSWERS[host]

    monkeypatch.setattr(guard, "system_resolve", resolve)
    return questions


async def register(api: Api, keys: AppKeys, subscription: Subscription) -> None:
    body = {"app_key": keys.app_key, "platform": "web", "subscription": subscription.to_json()}
    response = await api.client.post("/sdk/v1/subscribers", json=body)
    assert response.status_code == 201, response.text


async def ledger(settings: Settings) -> dict[str, tuple[str, str | None, int]]:
    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            rows = await session.execute(
                select(Subscriber.address, Delivery.status, Delivery.last_error, Delivery.attempts).join(
                    Subscriber, Subscriber.id == Delivery.subscriber_id
                )
            )
            return {address: (status, error, attempts) for address, status, error, attempts in rows}
    finally:
        await database.dispose()


async def test_a_listed_name_that_resolves_to_a_forbidden_address_is_refused_at_send_time(
    api: Api, fake: FakePushService, decoy: socket.socket, asked: list[str]
) -> None:
    port = decoy.getsockname()[1]
    keys = await create_app(api.settings)
    _reg_id, reachable = await subscribe(api.client, keys, fake)
    forged = {}
    for name in ANSWERS:
        subscription = fake.new_subscription(application_server_key=keys.vapid_public_key)
        endpoint = f"https://{name}:{port}/push/{subscription.sub_id}"
        await register(api, keys, dataclasses.replace(subscription, endpoint=endpoint))
        forged[name] = endpoint

    campaign_id = await push(api.client, keys)
    final = await wait_for_status(api.client, keys, campaign_id, "SENT")

    assert final["send"] == 1
    rows = await ledger(api.settings)
    assert rows[reachable.endpoint] == ("sent", None, 1), "a listed loopback literal stays reachable"
    assert rows[forged["push.test"]] == (
        "rejected",
        "refused by the outbound address policy: push.test resolves to 127.0.0.2, 127.0.0.0/8 (loopback)",
        1,
    )
    assert rows[forged["meta.test"]] == (
        "rejected",
        "refused by the outbound address policy: meta.test resolves to 169.254.169.254, "
        "169.254.169.254/32 (cloud metadata)",
        1,
    )
    assert sorted(asked) == ["meta.test", "push.test"], "resolved by the guard, once per name"
    with pytest.raises(BlockingIOError):
        decoy.accept()  # nothing connected to 127.0.0.2
    assert len(fake.received_for(reachable.sub_id)) == 1
    assert len([r for r in fake.requests if r.method == "POST"]) == 1

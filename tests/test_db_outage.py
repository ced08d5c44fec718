"""The database goes away under the API (issue #19): every request answers 503 with Retry-After, in the
error shape of its surface, within 2 s, whether the connections are reset or black-holed; /healthz and
/readyz say so; and once the database is back the same requests succeed again, with no restart.

PostgreSQL is reached through bench/tcp_proxy.py, which breaks the link on demand: the machine's shared
PostgreSQL is never stopped.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from bench.tcp_proxy import Mode, TcpProxy

from clarion.app import create_app
from clarion.composition import open_database
from clarion.config import Settings
from tests.app_tenant.factory import MESSAGE, Tenant, new_app, web_body
from tests.app_tenant.fixtures import fake
from tests.conftest import make_settings
from tests.fakes.push_service import FakePushService
from tests.support import PostgresDatabases

pytestmark = pytest.mark.postgres

# The bound on any answer while a dependency is down.
MAX_ANSWER_S = 2.0
UNAVAILABLE_TEXT = (
    "The service is temporarily unavailable (its database or queue did not answer); try again shortly"
)
__all__ = ["fake"]  # the fixture, imported for this module's tests
GRAVITEC_503 = {
    "httpStatus": "SERVICE_UNAVAILABLE",
    "error": "Service Unavailable",
    "errorDescription": UNAVAILABLE_TEXT,
}
CLARION_503 = {"error": "service_unavailable", "message": UNAVAILABLE_TEXT}


@pytest.fixture
def proxied_url(postgres_databases: PostgresDatabases) -> Iterator[tuple[TcpProxy, str]]:
    """A fresh PostgreSQL database, reached through a proxy the test can break."""
    url = postgres_databases.fresh()
    parts = urlsplit(url)
    try:
        with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
            yield proxy, parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    finally:
        postgres_databases.drop(url)


@dataclass
class Outage:
    proxy: TcpProxy
    client: httpx.AsyncClient
    tenant: Tenant
    reg_id: str
    campaign_id: str
    fake: FakePushService


@pytest.fixture
async def outage(proxied_url: tuple[TcpProxy, str], fake: FakePushService) -> AsyncIterator[Outage]:
    proxy, url = proxied_url
    settings = make_settings(url, db_timeout_s=Settings.model_fields["db_timeout_s"].default)  # 1 s, shipped
    db = open_database(settings, pool_size=1)
    try:
        tenant = await new_app(db, plan="unlimited")
    finally:
        await db.dispose()
    app = create_app(settings, run_engine=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            answer = await client.post("/sdk/v1/subscribers", json=_subscription(tenant, fake))
            assert answer.status_code == 201, answer.text
            pushed = await client.post("/api/v3/push", json={"payload": MESSAGE}, auth=tenant.auth)
            assert pushed.status_code == 200, pushed.text
            yield Outage(proxy, client, tenant, answer.json()["regId"], pushed.json()["id"], fake)


def _subscription(tenant: Tenant, fake: FakePushService) -> dict[str, object]:
    return web_body(tenant.app_key, fake.new_subscription().to_json())


Call = Callable[[Outage], Awaitable[httpx.Response]]


async def _push(o: Outage) -> httpx.Response:
    return await o.client.post("/api/v3/push", json={"payload": MESSAGE}, auth=o.tenant.auth)


async def _tag(o: Outage) -> httpx.Response:
    return await o.client.post(f"/api/v3/tag?regId={o.reg_id}&name=vip", auth=o.tenant.auth)


async def _message(o: Outage) -> httpx.Response:
    return await o.client.get(f"/api/v3/messages/{o.campaign_id}", auth=o.tenant.auth)


async def _register(o: Outage) -> httpx.Response:
    return await o.client.post("/sdk/v1/subscribers", json=_subscription(o.tenant, o.fake))


# (name, call, its 503 body, its status once the database is back)
ENDPOINTS: list[tuple[str, Call, dict[str, str], int]] = [
    ("POST /api/v3/push", _push, GRAVITEC_503, 200),
    ("POST /api/v3/tag", _tag, GRAVITEC_503, 200),
    ("GET /api/v3/messages/{id}", _message, GRAVITEC_503, 200),
    ("POST /sdk/v1/subscribers", _register, CLARION_503, 201),
]


async def _timed(call: Call, o: Outage) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = await call(o)
    return answer, time.monotonic() - started


@pytest.mark.parametrize("mode", ["reset", "blackhole"])
async def test_every_endpoint_answers_503_within_2_s_and_recovers(outage: Outage, mode: Mode) -> None:
    with outage.proxy.broken(mode):
        for _round in range(2):  # the first calls meet pooled connections, the second new ones
            for name, call, body, _ok in ENDPOINTS:
                answer, elapsed_s = await _timed(call, outage)
                assert (answer.status_code, answer.json()) == (503, body), (name, answer.text)
                assert answer.headers["retry-after"] == "1", name
                assert elapsed_s < MAX_ANSWER_S, (name, elapsed_s)
        for probe in ("/healthz", "/readyz"):
            answer, elapsed_s = await _timed(lambda o, p=probe: o.client.get(p), outage)  # type: ignore[misc]
            assert (answer.status_code, answer.json()) == (
                503,
                {"status": "unavailable", "database": "unreachable"},
            )
            assert elapsed_s < MAX_ANSWER_S, (probe, elapsed_s)
    # Back: the very next request of each kind succeeds, in this process, without a restart.
    for name, call, _body, ok in ENDPOINTS:
        answer, elapsed_s = await _timed(call, outage)
        assert answer.status_code == ok, (name, answer.text)
        assert elapsed_s < MAX_ANSWER_S, (name, elapsed_s)
    for probe in ("/healthz", "/readyz"):
        answer = await outage.client.get(probe)
        assert (answer.status_code, answer.json()) == (200, {"status": "ok"})

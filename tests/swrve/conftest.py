"""The Swrve-compatible Batch Push API under test: the real app over ASGI with its engine, and the
five platform fakes (FCM, APNs, WNS, ADM, Web Push) it delivers to.

The app starts with FCM credentials only; a test adds the others with `await api.credentials(...)`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from clarion.app import create_app
from clarion.app_tenant import credentials
from clarion.app_tenant import service as apps
from clarion.composition import open_database
from clarion.config import Settings
from clarion.db import Database
from clarion.swrve import campaigns as swrve
from tests.app_tenant.factory import id_hash
from tests.conftest import make_settings
from tests.fakes.adm import FakeAdm
from tests.fakes.apns import FakeApns
from tests.fakes.fcm import FakeFcm
from tests.fakes.push_service import FakePushService
from tests.fakes.wns import FakeWns

BASE_URL = "http://clarion.test"
FCM_PROJECT = "swrve-test"
# The fixture's rate limit: small, so that a test can reach it.
RATE_PER_MINUTE = 5
# A report entry as (user, reason, safe_to_resend).
Entry = tuple[str | None, str, bool]


@dataclass
class Fakes:
    fcm: FakeFcm
    apns: FakeApns
    wns: FakeWns
    adm: FakeAdm
    web: FakePushService
    wns_client: tuple[str, str]
    adm_client: tuple[str, str]


@dataclass(frozen=True)
class PushApi:
    """A Push API campaign: its id (for the admin API) and its push_key (for /push_batch)."""

    campaign_id: int
    push_key: str


@dataclass(frozen=True)
class Device:
    """A registered device: `token` is what its push service knows it by (for the web, the sub_id);
    `proof` what proves it to the subscriber API (the subscription's auth secret, or the token)."""

    platform: str
    token: str
    reg_id: str
    proof: str


@dataclass
class Swrve:
    client: httpx.AsyncClient
    db: Database
    settings: Settings
    fakes: Fakes
    app: apps.AppCreated
    asgi: FastAPI

    @property
    def app_key(self) -> str:
        return self.app.app_key

    @property
    def identity_key(self) -> str:
        return self.app.identity_secret_key

    async def push_campaign(
        self,
        platform: str = "all",
        message: str | None = "Default",
        title: str | None = "T",
        app_key: str | None = None,
    ) -> PushApi:
        async with self.db.session() as session:
            campaign_id, key = await swrve.create_push_campaign(
                session, app_key or self.app_key, "c", message, title, platform
            )
        return PushApi(campaign_id, key)

    async def other_app(self) -> apps.AppCreated:
        async with self.db.session() as session:
            return await apps.create(session, "another app", "unlimited")

    async def credentials(self, *providers: str) -> None:
        """Store the app's credentials for these providers, each accepted by its fake."""
        data = {
            "fcm": lambda: self.fakes.fcm.new_service_account(FCM_PROJECT),
            "apns": lambda: {
                "key_pem": self.fakes.apns.key_pem,
                "key_id": self.fakes.apns.key_id,
                "team_id": self.fakes.apns.team_id,
                "topic": self.fakes.apns.topic,
            },
            "wns": lambda: dict(zip(("client_id", "client_secret"), self.fakes.wns_client, strict=True)),
            "adm": lambda: dict(zip(("client_id", "client_secret"), self.fakes.adm_client, strict=True)),
        }
        async with self.db.session() as session:
            for provider in providers:
                await credentials.store(session, self.app_key, provider, data[provider]())

    async def device(self, platform: str, user_id: str | None = None, external: str | None = None) -> Device:
        """Register a device of this platform through the subscriber API, as an SDK would."""
        body: dict[str, Any] = {"app_key": self.app_key, "platform": platform}
        if platform == "web":
            sub = self.fakes.web.new_subscription(application_server_key=self.app.vapid_public_key)
            body["subscription"], token, proof = sub.to_json(), sub.sub_id, sub.auth
        else:
            token = proof = self._new_token(platform)
            body["token"] = token
        # Identity verification: the hashes the app's backend would give the device.
        if user_id is not None:
            body["user_id"], body["user_id_hash"] = user_id, self.id_hash(user_id)
        if external is not None:
            body["external_user_id"], body["external_user_id_hash"] = external, self.id_hash(external)
        response = await self.client.post("/sdk/v1/subscribers", json=body)
        assert response.status_code == 201, response.text
        return Device(platform, token, response.json()["regId"], proof)

    def id_hash(self, user_id: str) -> str:
        return id_hash(self.identity_key, user_id)

    def _new_token(self, platform: str) -> str:
        if platform == "android":
            return self.fakes.fcm.new_token(FCM_PROJECT)
        if platform == "ios":
            return self.fakes.apns.new_token()
        if platform == "wns":
            return self.fakes.wns.new_channel(self.fakes.wns_client[0])
        assert platform == "adm"
        return self.fakes.adm.new_registration()

    def received(self, device: Device) -> list[Any]:
        """What the device's push service accepted for it, in the form each fake records."""
        fakes = self.fakes
        if device.platform == "android":
            return list(fakes.fcm.received_for(device.token))
        if device.platform == "ios":
            return list(fakes.apns.received_for(device.token))
        if device.platform == "wns":
            return list(fakes.wns.received_for(device.token))
        if device.platform == "adm":
            return list(fakes.adm.received_for(device.token))
        return list(fakes.web.received_for(device.token))

    async def post(
        self, push_key: str | None, body: Any, *, headers: dict[str, str] | None = None, **query: str
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        params = {**({"push_key": push_key} if push_key is not None else {}), **query}
        return await self.client.post(
            "/push_batch",
            params=params,
            content=raw,
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    async def submit(self, push_key: str, body: Any, **query: str) -> str:
        """POST a batch that must be accepted; checks the 202 answer whole and returns the batch id."""
        response = await self.post(push_key, body, **query)
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]
        location = f"{BASE_URL}/push_batch?batch_id={batch_id}"
        assert response.json() == {"batch_id": batch_id, "location": location}
        assert response.headers["location"] == location
        return str(batch_id)

    async def status(self, batch_id: str) -> dict[str, Any]:
        response = await self.client.get("/push_batch", params={"batch_id": batch_id})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def report(self, batch_id: str, timeout_s: float = 15) -> dict[str, Any]:
        """The batch's status once it is no longer in progress."""
        deadline = time.monotonic() + timeout_s
        while True:
            body = await self.status(batch_id)
            if body["status"] != "in_progress":
                return body
            assert time.monotonic() < deadline, f"batch still in progress: {body}"
            await asyncio.sleep(0.05)

    async def send(self, push_key: str, body: Any, **query: str) -> dict[str, Any]:
        return await self.report(await self.submit(push_key, body, **query))


def report(
    batch_id: str,
    status: str,
    *,
    total: int,
    sent: int,
    warnings: Sequence[Entry] = (),
    failures: Sequence[Entry] = (),
    retry_possible: bool = False,
) -> dict[str, Any]:
    """A whole status body, from (user, reason, safe_to_resend) triples."""

    def entries(items: Sequence[Entry]) -> list[dict[str, Any]]:
        return [{"user": u, "reason": r, "safe_to_resend": s} for u, r, s in items]

    return {
        "batch_id": batch_id,
        "status": status,
        "retry_possible": retry_possible,
        "counts": {"total": total, "sent": sent, "warnings": len(warnings), "failures": len(failures)},
        "warnings": entries(warnings),
        "failures": entries(failures),
    }


def error(status: int, text: str) -> dict[str, Any]:
    """The Batch Push API's error body."""
    return {"code": status, "message": text, "error": text}


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with (
        FakeFcm() as fcm,
        FakeApns(topic="com.example.swrve") as apns,
        FakeWns() as wns,
        FakeAdm() as adm,
        FakePushService() as web,
    ):
        yield Fakes(fcm, apns, wns, adm, web, wns.new_client(), adm.new_client())


@dataclass
class SwrveEnv:
    """One database and the fakes; `running()` starts the app on them (several times if need be)."""

    database_url: str
    fakes: Fakes
    db: Database
    app: apps.AppCreated

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "fcm_url": self.fakes.fcm.origin,
            "apns_url": self.fakes.apns.origin,
            "ca_file": self.fakes.apns.ca_file,
            "wns_url": self.fakes.wns.origin,
            "adm_url": self.fakes.adm.origin,
            "batch_rate_per_minute": RATE_PER_MINUTE,
        }
        return make_settings(self.database_url, **{**values, **overrides})

    @asynccontextmanager
    async def running(self, *, run_engine: bool = True, **overrides: object) -> AsyncIterator[Swrve]:
        settings = self.settings(**overrides)
        app = create_app(settings, run_engine=run_engine)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
                yield Swrve(client, self.db, settings, self.fakes, self.app, app)


@pytest.fixture
async def swrve_env(database_url: str, fakes: Fakes) -> AsyncIterator[SwrveEnv]:
    db = open_database(make_settings(database_url), pool_size=2)
    env = None
    try:
        async with db.session() as session:
            created = await apps.create(session, "swrve app", "unlimited")
            account = fakes.fcm.new_service_account(FCM_PROJECT)
            await credentials.store(session, created.app_key, "fcm", account)
        env = SwrveEnv(database_url, fakes, db, created)
        yield env
    finally:
        await db.dispose()


@pytest.fixture
async def swrve_api(swrve_env: SwrveEnv) -> AsyncIterator[Swrve]:
    async with swrve_env.running() as api:
        yield api

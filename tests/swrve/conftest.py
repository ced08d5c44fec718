"""A Clarion app with a Push API campaign, FCM credentials and the FCM + Web Push fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from clarion.app import create_app
from clarion.app_tenant import credentials
from clarion.app_tenant import service as apps
from clarion.db import Database
from clarion.swrve import service as swrve
from tests.conftest import make_settings
from tests.fakes.fcm import FakeFcm
from tests.fakes.push_service import FakePushService


@dataclass
class Swrve:
    client: httpx.AsyncClient
    db: Database
    fcm: FakeFcm
    web: FakePushService
    app_key: str
    app_secret: str
    identity_key: str
    vapid_public_key: str

    async def push_campaign(
        self, platform: str = "all", message: str | None = "Default", title: str | None = "T"
    ) -> str:
        async with self.db.session() as session:
            _id, key = await swrve.create_push_campaign(session, self.app_key, "c", message, title, platform)
        return key

    async def android(self, user_id: str | None = None, external: str | None = None) -> str:
        token = self.fcm.new_token("swrve-test")
        body = {"app_key": self.app_key, "platform": "android", "token": token}
        if user_id:
            body["user_id"] = user_id
        if external:
            body["external_user_id"] = external
        response = await self.client.post("/sdk/v1/subscribers", json=body)
        assert response.status_code == 201, response.text
        return token

    async def web_user(self, user_id: str) -> str:
        sub = self.web.new_subscription(application_server_key=self.vapid_public_key)
        body = {"app_key": self.app_key, "platform": "web", "subscription": sub.to_json(), "user_id": user_id}
        response = await self.client.post("/sdk/v1/subscribers", json=body)
        assert response.status_code == 201, response.text
        return sub.sub_id


@pytest.fixture
def fakes() -> Iterator[tuple[FakeFcm, FakePushService]]:
    with FakeFcm() as fcm, FakePushService() as web:
        yield fcm, web


@pytest.fixture
async def swrve_api(database_url: str, fakes: tuple[FakeFcm, FakePushService]) -> AsyncIterator[Swrve]:
    fcm, web = fakes
    settings = make_settings(database_url, fcm_url=fcm.origin, batch_rate_per_minute=5)
    db = Database(database_url, pool_size=2)
    async with db.session() as session:
        created = await apps.create(session, "swrve app", "unlimited")
        await credentials.store(session, created.app_key, "fcm", fcm.new_service_account("swrve-test"))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            yield Swrve(
                client,
                db,
                fcm,
                web,
                created.app_key,
                created.app_secret,
                created.identity_secret_key,
                created.vapid_public_key,
            )
    await db.dispose()

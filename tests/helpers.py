"""Small helpers shared by API-level tests: apps, subscribers and campaigns through the real API."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from clarion.app_tenant import service as apps
from clarion.composition import open_database
from clarion.config import Settings
from clarion.subscriber.service import address_hash
from tests.fakes.push_service import FakePushService, Subscription


@dataclass(frozen=True)
class AppKeys:
    app_key: str
    app_secret: str
    vapid_public_key: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.app_key, self.app_secret)


async def create_app(settings: Settings, plan: str = "unlimited") -> AppKeys:
    db = open_database(settings, pool_size=1)
    try:
        async with db.session() as session:
            created = await apps.create(session, "test app", plan)
    finally:
        await db.dispose()
    return AppKeys(created.app_key, created.app_secret, created.vapid_public_key)


def web_subscriber_row(
    app_id: int, reg_id: str, endpoint: str, p256dh: str, auth: str, now: datetime
) -> dict[str, Any]:
    """An active web subscriber's row, for tests that insert many at once (not through the API)."""
    return {
        "app_id": app_id,
        "reg_id": reg_id,
        "platform": "web",
        "address": endpoint,
        "address_hash": address_hash(endpoint),
        "p256dh": p256dh,
        "auth": auth,
        "active": True,
        "created_at": now,
        "updated_at": now,
    }


async def update_app(settings: Settings, app_key: str, **change: Any) -> None:
    """Change an app's settings through its service, as `clarion apps update` does."""
    db = open_database(settings, pool_size=1)
    try:
        async with db.session() as session:
            await apps.update(session, app_key, **change)
    finally:
        await db.dispose()


async def subscribe(
    client: httpx.AsyncClient, keys: AppKeys, fake: FakePushService
) -> tuple[str, Subscription]:
    subscription = fake.new_subscription(application_server_key=keys.vapid_public_key)
    body = {"app_key": keys.app_key, "platform": "web", "subscription": subscription.to_json()}
    response = await client.post("/sdk/v1/subscribers", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["regId"]), subscription


async def push(client: httpx.AsyncClient, keys: AppKeys, **body: Any) -> str:
    body.setdefault("payload", {"message": "Hello", "title": "Hi", "redirect_url": "https://example.com/a"})
    response = await client.post("/api/v3/push", json=body, auth=keys.auth)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def stats(client: httpx.AsyncClient, keys: AppKeys, campaign_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v3/messages/{campaign_id}", auth=keys.auth)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def wait_for_status(
    client: httpx.AsyncClient, keys: AppKeys, campaign_id: str, status: str, timeout_s: float = 10
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        current = await stats(client, keys, campaign_id)
        if current["status"] == status:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"campaign {campaign_id} not {status} after {timeout_s} s: {current}")
        await asyncio.sleep(0.05)

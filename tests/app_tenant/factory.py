"""Helpers for HTTP-level tests: apps made through the service layer, subscribers through the API."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from clarion.app_tenant import service as apps
from clarion.campaign import service as campaigns
from clarion.campaign.schemas import SegmentTerm
from clarion.db import Database
from clarion.models import App
from clarion.subscriber.proof import AUTH_HEADER
from clarion.subscriber.repository import SubscriberRepository
from tests.fakes.push_service import FakePushService

WRONG_PARAMS = "Incomplete by wrong param(s)!"
MESSAGE = {"message": "Hello", "redirect_url": "https://example.com/news"}


@dataclass(frozen=True)
class Tenant:
    app_id: int
    app_key: str
    app_secret: str
    vapid_public_key: str
    identity_secret_key: str = ""

    @property
    def auth(self) -> tuple[str, str]:
        return (self.app_key, self.app_secret)

    def user_id_hash(self, user_id: str) -> str:
        return id_hash(self.identity_secret_key, user_id)


def id_hash(identity_key: str, user_id: str) -> str:
    """What an app's backend computes for identity verification (docs/security.md)."""
    return hmac.new(identity_key.encode(), user_id.encode(), hashlib.sha256).hexdigest()


async def new_app(db: Database, plan: str = "free", name: str = "test app") -> Tenant:
    async with db.session() as session:
        created = await apps.create(session, name, plan)
    keys = (created.app_key, created.app_secret, created.vapid_public_key, created.identity_secret_key)
    return Tenant(created.app_id, *keys)


async def add_tags(db: Database, tenant: Tenant, names: Iterable[str]) -> None:
    """Tags that exist in the app (as if some subscriber had been tagged once)."""
    async with db.session() as session:
        repo = SubscriberRepository(session)
        for name in names:
            await repo.ensure_tag(tenant.app_id, name)


async def new_segment(db: Database, tenant: Tenant, name: str, terms: list[tuple[str, str]]) -> int:
    async with db.session() as session:
        app = await session.get(App, tenant.app_id)
        assert app is not None
        parsed = tuple(SegmentTerm(association, tag) for association, tag in terms)  # type: ignore[arg-type]
        segment = await campaigns.create_segment(session, app, name, parsed)
        return segment.id


def web_body(app_key: str, subscription: dict[str, Any]) -> dict[str, Any]:
    return {"app_key": app_key, "platform": "web", "subscription": subscription}


async def subscribe(client: httpx.AsyncClient, tenant: Tenant, fake: FakePushService) -> str:
    """A new web subscriber of the app; its regId."""
    return (await subscribe_with_proof(client, tenant, fake))[0]


async def subscribe_with_proof(
    client: httpx.AsyncClient, tenant: Tenant, fake: FakePushService
) -> tuple[str, dict[str, str]]:
    """A new web subscriber of the app: its regId, and the header that proves it holds the subscription."""
    subscription = fake.new_subscription().to_json()
    answer = await client.post("/sdk/v1/subscribers", json=web_body(tenant.app_key, subscription))
    assert answer.status_code == 201, answer.text
    reg_id: str = answer.json()["regId"]
    return reg_id, proof(subscription["keys"]["auth"])


def proof(secret: str) -> dict[str, str]:
    """The X-Clarion-Subscription-Auth header: a web subscription's auth secret, or a device token."""
    return {AUTH_HEADER: secret}


async def push(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> httpx.Response:
    body.setdefault("payload", MESSAGE)
    return await client.post("/api/v3/push", json=body, auth=tenant.auth)


async def stats(client: httpx.AsyncClient, tenant: Tenant, campaign_id: str) -> dict[str, Any]:
    answer = await client.get(f"/api/v3/messages/{campaign_id}", auth=tenant.auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def wait_for_stats(
    client: httpx.AsyncClient,
    tenant: Tenant,
    campaign_id: str,
    expected: dict[str, Any],
    timeout_s: float = 10,
) -> dict[str, Any]:
    """Poll GET /api/v3/messages/{id} until it answers `expected`; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = await stats(client, tenant, campaign_id)
        if body == expected:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"campaign {campaign_id} after {timeout_s} s: {body}, not {expected}")
        await asyncio.sleep(0.05)


def vendor_error(
    description: str, field: str | None = None, status: str = "UNPROCESSABLE_ENTITY"
) -> dict[str, Any]:
    """A Gravitec v3 error body; input errors also name their field."""
    body: dict[str, Any] = {"httpStatus": status, "error": WRONG_PARAMS, "errorDescription": description}
    if field is not None:
        body["field"] = field
    return body


def native_error(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """Clarion's own error body (the subscriber API)."""
    body: dict[str, Any] = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    return body

"""A browser as the self-service endpoints see it: its regId and the secret only it holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from clarion.subscriber.self_service import AUTH_HEADER
from tests.app_tenant.factory import Tenant, web_body
from tests.fakes.push_service import FakePushService, Subscription


@dataclass(frozen=True)
class Visitor:
    tenant: Tenant
    reg_id: str
    subscription: Subscription

    @property
    def auth(self) -> str:
        return self.subscription.auth

    def path(self, suffix: str = "") -> str:
        return f"/sdk/v1/subscribers/{self.reg_id}{suffix}"

    def params(self) -> dict[str, str]:
        return {"app_key": self.tenant.app_key}

    def headers(self, auth: str | None = None) -> dict[str, str]:
        return {AUTH_HEADER: auth if auth is not None else self.auth}

    async def call(
        self, client: httpx.AsyncClient, method: str, suffix: str = "", body: Any = None, **kwargs: Any
    ) -> httpx.Response:
        kwargs.setdefault("headers", self.headers())
        kwargs.setdefault("params", self.params())
        return await client.request(method, self.path(suffix), json=body, **kwargs)


async def new_visitor(client: httpx.AsyncClient, tenant: Tenant, fake: FakePushService) -> Visitor:
    subscription = fake.new_subscription(application_server_key=tenant.vapid_public_key)
    answer = await client.post("/sdk/v1/subscribers", json=web_body(tenant.app_key, subscription.to_json()))
    assert answer.status_code == 201, answer.text
    return Visitor(tenant, answer.json()["regId"], subscription)

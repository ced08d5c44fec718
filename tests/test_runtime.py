"""The request's one database session (runtime.SessionDep): the auth dependency and the handler share
it; it is committed once, after the handler and before the answer, and rolled back when the handler
fails. And what a request needs, it reads once."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.admin.repository import MetaRepository
from clarion.app import create_app
from clarion.app_tenant import service as apps
from clarion.config import Settings
from clarion.db import Database
from clarion.models import Meta
from clarion.runtime import Runtime, SessionDep
from clarion.subscriber.self_service import AUTH_HEADER
from clarion.swrve import campaigns as swrve
from tests.app_tenant.factory import new_app

INTERNAL_ERROR = {"error": "internal_error", "message": "Internal error"}


@dataclass
class Served:
    client: httpx.AsyncClient
    sessions: list[str]  # one entry per session opened
    statements: list[str]  # every SQL statement run

    def reset(self) -> None:
        self.sessions.clear()
        self.statements.clear()

    def selects_from(self, table: str) -> int:
        pattern = re.compile(rf"\bFROM {table}\b")
        return sum(1 for s in self.statements if s.lstrip().startswith("SELECT") and pattern.search(s))


async def _write(session: SessionDep) -> dict[str, bool]:
    await MetaRepository(session).put("written", "yes")
    return {"ok": True}


async def _write_then_refuse(session: SessionDep) -> dict[str, bool]:
    await MetaRepository(session).put("refused", "yes")
    await session.flush()  # the row is in the database's transaction: only a rollback removes it
    raise errors.InvalidField("refused after writing", field="x")


async def _write_a_duplicate(session: SessionDep) -> dict[str, bool]:
    session.add(Meta(key="taken", value="again"))  # fails only at the commit, after the handler
    return {"ok": True}


def _count_sessions(db: Database, opened: list[str]) -> None:
    original = db.session

    @asynccontextmanager
    async def counted() -> AsyncIterator[AsyncSession]:
        opened.append("session")
        async with original() as session:
            yield session

    db.session = counted  # type: ignore[method-assign]


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    app: FastAPI = create_app(settings, run_engine=False)
    app.add_api_route("/test/write", _write, methods=["POST"])
    app.add_api_route("/test/write-then-refuse", _write_then_refuse, methods=["POST"])
    app.add_api_route("/test/write-a-duplicate", _write_a_duplicate, methods=["POST"])
    async with app.router.lifespan_context(app):
        rt: Runtime = app.state.runtime
        statements: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            statements.append(statement)

        event.listen(rt.db.engine.sync_engine, "before_cursor_execute", record)
        sessions: list[str] = []
        _count_sessions(rt.db, sessions)
        # An unexpected error is answered 500 and also re-raised to the server: take the answer.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            yield Served(client, sessions, statements)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _subscription() -> dict[str, Any]:
    point = ec.generate_private_key(ec.SECP256R1()).public_key()
    p256dh = point.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {
        "endpoint": f"https://push.example.net/send/{secrets.token_hex(8)}",
        "keys": {"p256dh": _b64url(p256dh), "auth": _b64url(secrets.token_bytes(16))},
    }


async def _push_campaign(db: Database) -> tuple[int, str]:
    """A new app's Push API campaign: its id and its push_key."""
    async with db.session() as session:
        created = await apps.create(session, "swrve app", "unlimited")
        return await swrve.create_push_campaign(session, created.app_key, "c", "m", "t", "all")


async def _meta(db: Database, key: str) -> str | None:
    async with db.session() as session:
        return await MetaRepository(session).get(key)


async def test_the_auth_dependency_and_the_handler_share_one_session(served: Served, db: Database) -> None:
    tenant = await new_app(db, plan="free")
    body = {"app_key": tenant.app_key, "platform": "web", "subscription": _subscription()}
    registered = await served.client.post("/sdk/v1/subscribers", json=body)
    assert registered.status_code == 201, registered.text
    reg_id = registered.json()["regId"]

    served.reset()
    tagged = await served.client.post(
        "/api/v3/tag", params={"regId": reg_id, "name": "news"}, auth=tenant.auth
    )
    assert (tagged.status_code, tagged.json()) == (
        200,
        {"success": True, "message": "Tag was successfully added"},
    )
    assert served.sessions == ["session"]

    served.reset()
    pushed = await served.client.post(
        "/api/v3/push",
        json={"payload": {"title": "T", "message": "M", "redirect_url": "https://example.com"}},
        auth=tenant.auth,
    )
    assert pushed.status_code == 200, pushed.text
    assert served.sessions == ["session"]  # authentication, the quota and the campaign: one transaction

    served.reset()
    stats = await served.client.get(f"/api/v3/messages/{pushed.json()['id']}", auth=tenant.auth)
    assert (stats.status_code, stats.json()["status"]) == (200, "SCHEDULED")
    assert served.sessions == ["session"]


async def test_the_admin_token_check_and_the_handler_share_one_session(served: Served, db: Database) -> None:
    campaign_id, _ = await _push_campaign(db)
    served.reset()
    answer = await served.client.get(
        f"/admin/v1/push-campaigns/{campaign_id}", headers={"Authorization": "Bearer test-admin-token"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["campaign_id"] == campaign_id
    assert served.sessions == ["session"]


async def test_what_a_handler_wrote_is_committed_before_the_answer(served: Served, db: Database) -> None:
    answer = await served.client.post("/test/write")
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    assert await _meta(db, "written") == "yes"


async def test_what_a_failing_handler_wrote_is_rolled_back(served: Served, db: Database) -> None:
    answer = await served.client.post("/test/write-then-refuse")
    assert (answer.status_code, answer.json()) == (
        422,
        {"error": "invalid_field", "message": "refused after writing", "field": "x"},
    )
    assert await _meta(db, "refused") is None


async def test_a_commit_that_fails_is_answered_as_a_failure_not_a_success(
    served: Served, db: Database
) -> None:
    async with db.session() as session:
        await MetaRepository(session).put("taken", "first")
    answer = await served.client.post("/test/write-a-duplicate")
    assert (answer.status_code, answer.json()) == (500, INTERNAL_ERROR)
    assert await _meta(db, "taken") == "first"


async def test_push_batch_looks_its_campaign_and_app_up_once(served: Served, db: Database) -> None:
    _, push_key = await _push_campaign(db)
    served.reset()
    answer = await served.client.post(
        "/push_batch", params={"push_key": push_key}, json=[{"swrve_user_id": "u1"}]
    )
    assert answer.status_code == 202, answer.text
    assert served.sessions == ["session"]
    assert served.selects_from("push_campaigns") == 1
    assert served.selects_from("apps") == 1


async def test_self_service_calls_read_the_subscriber_once(served: Served, db: Database) -> None:
    tenant = await new_app(db)
    subscription = _subscription()
    body = {"app_key": tenant.app_key, "platform": "web", "subscription": subscription}
    registered = await served.client.post("/sdk/v1/subscribers", json=body)
    assert registered.status_code == 201, registered.text
    reg_id = registered.json()["regId"]
    path = f"/sdk/v1/subscribers/{reg_id}"
    headers = {AUTH_HEADER: subscription["keys"]["auth"]}
    params = {"app_key": tenant.app_key}
    calls = [
        ("PUT", "/tags", {"tags": ["e", "d", "c", "b", "a", "A"]}, ["a", "b", "c", "d", "e"]),
        ("POST", "/tags", {"tag": "f"}, ["a", "b", "c", "d", "e", "f"]),
        ("DELETE", "/tags/f", None, ["a", "b", "c", "d", "e"]),
    ]
    for method, suffix, json, tags in calls:
        served.reset()
        answer = await served.client.request(method, path + suffix, params=params, headers=headers, json=json)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"regId": reg_id, "alias": None, "tags": tags, "active": True}
        assert served.sessions == ["session"]
        assert served.selects_from("subscribers") == 1, (method, suffix)

    served.reset()
    answer = await served.client.put(path + "/alias", params=params, headers=headers, json={"alias": "me"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["alias"] == "me"
    assert served.selects_from("subscribers") == 1

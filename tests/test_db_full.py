"""A full disk under SQLite (issue #19): a write that cannot grow the database answers 503 with the
surface's error shape (not 500), nothing already stored is damaged, and writes succeed again once
there is room, with no restart.

The disk is filled with SQLite's own `PRAGMA max_page_count` set on every connection of the server at
the database's current size: the same SQLITE_FULL ("database or disk is full") a full file system
gives, without a tiny file system (which would need root to mount).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from clarion.app import create_app
from clarion.composition import open_database
from clarion.db import Database
from tests.app_tenant.factory import Tenant, new_app, web_body
from tests.app_tenant.fixtures import fake
from tests.conftest import make_settings
from tests.fakes.push_service import FakePushService
from tests.support import SqliteDatabases

__all__ = ["fake"]  # the fixture, imported for this module's tests
UNAVAILABLE = {
    "error": "service_unavailable",
    "message": "The service is temporarily unavailable (its database or queue did not answer); "
    "try again shortly",
}
# Registrations tried until the database needs a page it may not have: a few rows fill a page.
MAX_TRIES = 500


class Disk:
    """Caps the database file at its current size on every connection of `db`, until `make_room()`."""

    def __init__(self, db: Database, path: Path) -> None:
        self.db = db
        self.path = path
        self.full = False
        event.listen(db.engine.sync_engine, "connect", self._on_connect)

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        if self.full:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute(f"PRAGMA max_page_count = {pages}")
            cursor.close()

    async def fill(self) -> None:
        self.full = True
        await self.db.engine.dispose()  # every connection from now on opens capped

    async def make_room(self) -> None:
        self.full = False
        await self.db.engine.dispose()


@pytest.fixture
async def client(
    tmp_path: Path, sqlite_databases: SqliteDatabases
) -> AsyncIterator[tuple[httpx.AsyncClient, Tenant, Disk]]:
    url = sqlite_databases.fresh(tmp_path)
    path = tmp_path / "clarion.db"
    settings = make_settings(url)
    db = open_database(settings)
    try:
        tenant = await new_app(db, plan="unlimited")
    finally:
        await db.dispose()
    app = create_app(settings, run_engine=False)
    async with app.router.lifespan_context(app):
        disk = Disk(app.state.runtime.db, path)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as http:
            yield http, tenant, disk


async def test_a_full_disk_answers_503_damages_nothing_and_recovers(
    client: tuple[httpx.AsyncClient, Tenant, Disk], fake: FakePushService
) -> None:
    http, tenant, disk = client
    first = await http.post(
        "/sdk/v1/subscribers", json=web_body(tenant.app_key, fake.new_subscription().to_json())
    )
    assert first.status_code == 201, first.text
    await disk.fill()
    stored = 1
    for _ in range(MAX_TRIES):
        answer = await http.post(
            "/sdk/v1/subscribers", json=web_body(tenant.app_key, fake.new_subscription().to_json())
        )
        if answer.status_code != 201:
            break
        stored += 1
    else:
        pytest.fail(f"{MAX_TRIES} registrations fitted in a full database")
    assert (answer.status_code, answer.json()) == (503, UNAVAILABLE)
    assert answer.headers["retry-after"] == "1"
    # What was stored before the disk filled is intact, and nothing of the refused write was kept.
    with sqlite3.connect(disk.path) as check:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert check.execute("SELECT count(*) FROM subscribers").fetchone() == (stored,)

    await disk.make_room()
    again = await http.post(
        "/sdk/v1/subscribers", json=web_body(tenant.app_key, fake.new_subscription().to_json())
    )
    assert again.status_code == 201, again.text

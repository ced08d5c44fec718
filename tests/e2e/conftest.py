"""Fixtures for tests that drive real `clarion serve` / `clarion worker` processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from clarion.db import Database, utcnow
from clarion.models import App, Subscriber
from clarion.subscriber.service import address_hash
from tests.conftest import TEST_SECRET_KEY
from tests.e2e.processes import Processes
from tests.fakes.push_service import FakePushService, Subscription
from tests.support import REDIS_URL, PostgresDatabases, require


def engine_env(database_url: str, queue_url: str = "memory://") -> dict[str, str]:
    return {
        "CLARION_DATABASE_URL": database_url,
        "CLARION_QUEUE_URL": queue_url,
        "CLARION_PUSH_HOSTS": "127.0.0.1",
        "CLARION_ADMIN_TOKEN": "e2e-admin-token",
        "CLARION_LEASE_S": "3",
        "CLARION_SCHEDULER_INTERVAL_S": "0.1",
        "CLARION_CHUNK_SIZE": "200",
        "CLARION_WORKER_JOBS": "2",
        "CLARION_RETRY_BASE_S": "0.2",
        # Every process of one deployment reads the same key (docs/security.md, Secrets at rest).
        "CLARION_SECRET_KEY": TEST_SECRET_KEY,
    }


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


@pytest.fixture
def postgres_url(postgres_databases: PostgresDatabases) -> Iterator[str]:
    url = postgres_databases.fresh()
    yield url
    postgres_databases.drop(url)


@pytest.fixture
def redis_url() -> str:
    """A Redis database emptied for this test, so no job of another test's database is left in it."""
    require("redis")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()
    return REDIS_URL


def make_processes(tmp_path: Path, env: dict[str, str]) -> Processes:
    return Processes(tmp_path, env)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[Processes]]:
    """Collects every Processes a test makes; survivors are killed however the test ends."""
    made: list[Processes] = []
    yield made
    for group in made:
        group.close()


def create_app_cli(procs: Processes) -> dict[str, str]:
    created: dict[str, str] = json.loads(procs.cli("apps", "create", "e2e", "--plan", "unlimited", "--json"))
    return created


def bulk_subscribe(database_url: str, app_key: str, subs: Sequence[Subscription]) -> None:
    """Insert many web subscribers at once (registration itself is tested through the API elsewhere)."""

    async def insert() -> None:
        from sqlalchemy import insert, select

        db = Database(database_url, pool_size=1)
        try:
            async with db.session() as session:
                app_id = (await session.execute(select(App.id).where(App.app_key == app_key))).scalar_one()
                now = utcnow()
                rows = [
                    {
                        "app_id": app_id,
                        "reg_id": f"bulk-{sub.sub_id}",
                        "platform": "web",
                        "address": sub.endpoint,
                        "address_hash": address_hash(sub.endpoint),
                        "p256dh": sub.p256dh,
                        "auth": sub.auth,
                        "active": True,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for sub in subs
                ]
                for start in range(0, len(rows), 1000):
                    await session.execute(insert(Subscriber), rows[start : start + 1000])
        finally:
            await db.dispose()

    asyncio.run(insert())

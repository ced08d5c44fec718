"""Fixtures: a fresh database per test on SQLite and on PostgreSQL, the app under test over ASGI."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from clarion.app import create_app
from clarion.composition import open_database
from clarion.config import Settings
from clarion.db import Database
from tests.fakes.tls import write_certificates
from tests.support import PostgresDatabases, PrivateRedis, SqliteDatabases, require

logging.getLogger("alembic").setLevel(logging.WARNING)

# A fixed key for stored secrets where a test has no data directory of its own (32 bytes, base64url).
TEST_SECRET_KEY = "Y2xhcmlvbi10ZXN0LXNlY3JldC1rZXktMzItYnl0ZXM"


@pytest.fixture(autouse=True)
def _private_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test, nor any process it starts, writes into the real per-user data directory."""
    monkeypatch.setenv("CLARION_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="session")
def sqlite_databases(tmp_path_factory: pytest.TempPathFactory) -> SqliteDatabases:
    databases = SqliteDatabases(tmp_path_factory.mktemp("sqlite-template"))
    databases.setup()
    return databases


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    require("postgres")
    databases = PostgresDatabases()
    databases.setup()
    yield databases
    databases.teardown()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_databases").fresh(tmp_path)
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    url = databases.fresh()
    yield url
    databases.drop(url)


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "queue_url": "memory://",
        "push_hosts": "127.0.0.1,push.example.net",
        "scheduler_interval_s": 0.05,
        "retry_base_s": 0.05,
        "retry_max_s": 0.5,
        "lease_s": 5.0,
        "request_timeout_s": 2.0,
        "connect_timeout_s": 1.0,
        "admin_token": "test-admin-token",
        # Generous for tests on a loaded machine (many requests serialised on one row lock may wait
        # longer than the 1 s default); tests/test_db_outage.py sets the default back on purpose.
        "db_timeout_s": 5.0,
    }
    if not database_url.startswith("sqlite"):
        # SQLite tests use the key file beside their database; PostgreSQL ones have no such directory.
        values["secret_key"] = TEST_SECRET_KEY
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = open_database(settings)
    yield database
    await database.dispose()


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: Settings


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """The real application (HTTP API and, with memory://, the in-process delivery engine) over ASGI."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            yield Api(client, settings)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server of the test's own (killed, with whatever it runs, after the test)."""
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def untrusted_tls(tmp_path: Path) -> AsyncIterator[str]:
    """A TLS server whose certificate no trusted CA signed; returns its origin."""
    certfile, keyfile = write_certificates(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)

    async def close_at_once(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(close_at_once, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()

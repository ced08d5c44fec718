"""Shared test plumbing: fresh databases on SQLite and PostgreSQL, and the service checks."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get("CLARION_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CLARION_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), 1):
            return True
    except OSError:
        return False


def require(service: str) -> None:
    """Skip with a clear message where the service is missing; in CI a missing service is a failure."""
    url, port = (POSTGRES_URL, 5432) if service == "postgres" else (REDIS_URL, 6379)
    if _answers(url, port):
        return
    message = f"{service} is not answering at {url}; start it (see README, 'Tests') to run these tests"
    if IN_CI:
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


def _with_database(name: str) -> str:
    parts = urlsplit(POSTGRES_URL)
    return parts._replace(path=f"/{name}").geturl()


async def _pg_admin(*statements: str) -> None:
    import asyncpg

    parts = urlsplit(POSTGRES_URL)
    connection = await asyncpg.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username, database=parts.path.lstrip("/")
    )
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


class PostgresDatabases:
    """A migrated template database, copied for every test (much faster than migrating each time)."""

    def __init__(self) -> None:
        self.template = f"clarion_tpl_{uuid.uuid4().hex[:10]}"
        self.created: list[str] = []

    def setup(self) -> None:
        from clarion.migrations import upgrade

        asyncio.run(_pg_admin(f'CREATE DATABASE "{self.template}"'))
        upgrade(_with_database(self.template))

    def fresh(self) -> str:
        name = f"clarion_t_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        self.created.append(name)
        return _with_database(name)

    def drop(self, name_or_url: str) -> None:
        name = urlsplit(name_or_url).path.lstrip("/") if "://" in name_or_url else name_or_url
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def teardown(self) -> None:
        for name in [*self.created, self.template]:
            self.drop(name)


class SqliteDatabases:
    def __init__(self, root: Path) -> None:
        self.template = root / "template.db"

    def setup(self) -> None:
        from clarion.migrations import upgrade

        upgrade(f"sqlite:///{self.template}")

    def fresh(self, directory: Path) -> str:
        target = directory / "clarion.db"
        shutil.copyfile(self.template, target)
        return f"sqlite:///{target}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

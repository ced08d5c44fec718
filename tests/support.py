"""Shared test plumbing: fresh databases on SQLite and PostgreSQL, and the service checks."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
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


class PrivateRedis:
    """A redis-server of the test's own on a free port, without persistence: it can be killed and
    started again empty, as a Redis restarted without persistence is (never the machine's shared one)."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            if IN_CI:
                pytest.fail("CI=true and redis-server is not on PATH")
            pytest.skip("redis-server is not on PATH")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _answers(self.url, self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the private redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL, as a crash: whatever it held is gone."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None

"""Migrations: applied on start by every process, safely even when several start at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.support import _pg_admin, _with_database, require


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    require("postgres")
    name = f"clarion_empty_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    yield _with_database(name)
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.postgres
def test_processes_starting_together_migrate_an_empty_postgres_once(empty_postgres: str) -> None:
    env = {**os.environ, "CLARION_DATABASE_URL": empty_postgres}
    starts = [
        subprocess.Popen(
            [sys.executable, "-m", "clarion.cli", "apps", "create", f"app{i}", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    results = [process.communicate(timeout=60) for process in starts]
    assert [process.returncode for process in starts] == [0, 0, 0], results
    assert all('"app_key"' in out for out, _err in results)

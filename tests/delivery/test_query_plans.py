"""The statements that name their ledger rows by id find them by the primary key on SQLite.

Each job claims its rows, renews their lease and the sweep hands lapsed rows back by id; had SQLite
planned those on ix_delivery_sweep's `status` prefix (as it did), every job would read every pending
row of the ledger: O(pending) per job, which no functional test sees (delivery/repository.py,
`_by_id`). EXPLAIN QUERY PLAN against a migrated database shows the plan the engine gets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Update
from sqlalchemy.dialects import sqlite

from clarion.composition import open_database
from clarion.db import Database
from clarion.delivery import repository
from clarion.delivery.repository import LedgerRepository
from tests.conftest import make_settings
from tests.support import SqliteDatabases

PRIMARY_KEY = "SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)"


@pytest.fixture
async def db(sqlite_databases: SqliteDatabases, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database (PostgreSQL plans by its statistics, and binds an array)."""
    database = open_database(make_settings(sqlite_databases.fresh(tmp_path)))
    yield database
    await database.dispose()


async def _plan(db: Database, statement: Any, values: dict[str, Any]) -> list[str]:
    compiled = statement.compile(dialect=sqlite.dialect())
    params = {**compiled.params, **values}
    ordered = [params[name] for name in compiled.positiontup]
    async with db.session() as session:
        connection = await session.connection()
        raw = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}", tuple(ordered))
        return [str(row[-1]) for row in raw.all()]


class _Captured:
    """A session stand-in that keeps the UPDATE the sweep would run, without running it."""

    def __init__(self, bind: Any) -> None:
        self.bind = bind
        self.statement: Update | None = None

    def get_bind(self) -> Any:
        return self.bind

    async def execute(self, statement: Update) -> Any:
        self.statement = statement
        return _NoRows()


class _NoRows:
    def all(self) -> list[Any]:
        return []


NOW = datetime(2026, 12, 1, tzinfo=UTC)
CLAIM_VALUES = {"ids": "[1,2,3]", "now": NOW, "new_owner": "w", "until": NOW, "campaign": 1}
RENEW_VALUES = {"ids": "[1,2,3]", "holder": "w", "until": NOW}


@pytest.mark.parametrize(
    ("build", "values"),
    [(repository._claim_statement, CLAIM_VALUES), (repository._renew_statement, RENEW_VALUES)],
    ids=["claim", "renew"],
)
async def test_a_job_s_statements_find_its_rows_by_primary_key(
    db: Database, build: Callable[[bool], Update], values: dict[str, Any]
) -> None:
    plan = await _plan(db, build(False), values)
    assert plan[0] == PRIMARY_KEY, plan
    assert not any("ix_delivery_sweep" in line for line in plan), plan


async def test_the_sweep_hands_back_lapsed_rows_by_primary_key(db: Database) -> None:
    async with db.session() as session:
        captured = _Captured(session.get_bind())
        ledger = LedgerRepository(session)
        ledger.session = captured  # type: ignore[assignment]  # keeps the statement instead of running it
        await ledger.lapsed(NOW, NOW, 100, held=[7])
    assert captured.statement is not None
    plan = await _plan(db, captured.statement, {})
    # The outer UPDATE finds each row by its id; only the subquery that picks them reads the index.
    assert plan[0] == PRIMARY_KEY, plan
    assert any("ix_delivery_sweep" in line for line in plan[1:]), plan

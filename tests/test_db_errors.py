"""Which database errors mean "not now" (503, try again) and which are bugs (500): db.unreachable."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from clarion.db import unreachable


class DriverError(Exception):
    """A driver's error carrying a SQLSTATE, as asyncpg's (and SQLAlchemy's adapter of it) do."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


def _wrapped(sqlstate: str) -> DBAPIError:
    """SQLAlchemy's error around an adapter error raised `from` the driver's own, as asyncpg's are."""
    adapter = Exception("adapted")
    adapter.__cause__ = DriverError(sqlstate)
    return DBAPIError("SELECT 1", None, adapter)


def test_unreachable_and_slow_databases_are_told_from_bugs() -> None:
    not_now = [
        PoolTimeout("QueuePool limit reached"),
        TimeoutError(),
        ConnectionRefusedError(111, "refused"),
        ConnectionResetError(104, "reset"),
        OperationalError("SELECT 1", None, sqlite3.OperationalError("database is locked")),
        DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True),
        _wrapped("08006"),  # connection failure
        _wrapped("57P01"),  # admin shutdown (a restart)
        _wrapped("57014"),  # statement cancelled
        _wrapped("53300"),  # too many connections
    ]
    bugs = [
        IntegrityError("INSERT", None, Exception("duplicate key")),
        ProgrammingError("SELECT", None, Exception("syntax error")),
        _wrapped("23505"),  # unique violation
        _wrapped("22003"),  # numeric value out of range
        ValueError("bug"),
        OverflowError("Python int too large to convert to SQLite INTEGER"),
        KeyError("x"),
    ]
    assert [unreachable(exc) for exc in not_now] == [True] * len(not_now)
    assert [unreachable(exc) for exc in bugs] == [False] * len(bugs)

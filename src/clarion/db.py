"""Engine, the one session scope (the only commit point), and SQLite/PostgreSQL specifics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Integer, event, func, text
from sqlalchemy.engine import Connection, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from clarion.config import sqlite_file

T = TypeVar("T")


def async_url(url: str) -> str:
    """Map the contract's plain URLs onto the async drivers Clarion uses."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return str(parsed.set(drivername="sqlite+aiosqlite"))
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    return parsed.render_as_string(hide_password=False)


def shown_url(url: str) -> str:
    """The URL as logs show it: the password hidden, a SQLite file's path absolute."""
    database = sqlite_file(url)
    if database is not None:
        return f"sqlite:///{database}"
    return make_url(url).render_as_string(hide_password=True)


def ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class Timeouts:
    """How long each database step may take before it fails (seconds).

    connect_s: opening a connection (TCP, TLS, authentication); acquire_s: waiting for a pooled
    connection when all are in use; statement_s: one statement on PostgreSQL (asyncpg's
    command_timeout, BEGIN and COMMIT included); lock_wait_s: on SQLite, how long a writer waits for
    the database lock (busy_timeout) before it fails with "database is locked".
    """

    connect_s: float
    acquire_s: float
    statement_s: float
    lock_wait_s: float

    @classmethod
    def for_requests(cls, timeout_s: float) -> Timeouts:
        """API requests: every step bounded by `timeout_s` (waiting for the pool by half of it), so a
        database that is down or black-holed costs a request about `timeout_s`, then a 503."""
        return cls(connect_s=timeout_s, acquire_s=timeout_s / 2, statement_s=timeout_s, lock_wait_s=timeout_s)


# Background work (delivery, Swrve batches, the CLI): bounded, so that nothing waits forever on a
# database that went away, but loosely, since nobody waits on a socket for it. 30 s of lock waiting
# on SQLite is what writers had before there were request timeouts.
ENGINE_TIMEOUTS = Timeouts(connect_s=10.0, acquire_s=30.0, statement_s=60.0, lock_wait_s=30.0)


def _sqlite_pragmas(lock_wait_s: float) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the single writer; busy_timeout makes writers queue, not fail
        # (for as long as the engine's role allows: short for requests, long for background work).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(lock_wait_s * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


def _driver(dbapi_connection: Any) -> Any:
    """The asyncpg connection behind SQLAlchemy's adapter (or behind a pool's connection proxy)."""
    return getattr(dbapi_connection, "driver_connection", None)


def _refuse_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """At checkout, a connection the server or the network already closed (a reset, a restart) is
    replaced: a local check, no round trip. (pool_pre_ping would add a round trip per checkout, and
    against a black-holed server a ping that waits for its timeout before the reconnect even starts.)"""
    driver = _driver(dbapi_connection)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("connection closed by the server or the network")


def _drop_on_failure(context: ExceptionContext) -> None:
    """A statement that timed out or lost its connection: that connection is dropped at once.

    asyncpg's timeout leaves the connection mid-query; SQLAlchemy would close it politely, which waits
    (up to 2 s) for a server that may not answer. Aborting it first makes the close immediate. Only
    this connection goes: the others are checked at their own checkout or fail on their own.
    """
    if not unreachable(context.original_exception):
        return
    context.is_disconnect = True
    context.invalidate_pool_on_disconnect = False
    connection = context.connection
    if connection is not None and not connection.invalidated:
        driver = _driver(connection.connection)
        if driver is not None:
            driver.terminate()


def create_engine(url: str, *, pool_size: int = 10, timeouts: Timeouts | None = None) -> AsyncEngine:
    """An engine for `url`; `timeouts` None (migrations only: a schema change may take long) leaves
    statements unbounded."""
    ensure_sqlite_dir(url)
    full = async_url(url)
    if full.startswith("sqlite"):
        lock_wait_s = timeouts.lock_wait_s if timeouts else ENGINE_TIMEOUTS.lock_wait_s
        pool_timeout = timeouts.acquire_s if timeouts else 30.0
        engine = create_async_engine(full, pool_size=pool_size, max_overflow=0, pool_timeout=pool_timeout)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(lock_wait_s))
        return engine
    if timeouts is None:
        return create_async_engine(full, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    engine = create_async_engine(
        full,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=timeouts.acquire_s,
        connect_args={"timeout": timeouts.connect_s, "command_timeout": timeouts.statement_s},
    )
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed)
    event.listen(engine.sync_engine, "handle_error", _drop_on_failure)
    return engine


# SQLSTATE classes of PostgreSQL errors that mean "not now" rather than "wrong request": connection
# exception, insufficient resources (too many connections), operator intervention (shutdown,
# restart, statement cancelled), system error.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57", "58")


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached or did not answer in time (as opposed to
    a bug or a refused statement): a reason to answer 503 and try again, not 500."""
    if isinstance(exc, SATimeoutError | OSError):  # pool wait; connect/statement timeouts, resets
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            return True
        return any(_unavailable_cause(cause) for cause in _causes(exc.orig))
    return _unavailable_cause(exc)


def _causes(exc: BaseException | None) -> list[BaseException]:
    found: list[BaseException] = []
    while exc is not None and len(found) < 8:
        found.append(exc)
        exc = exc.__cause__  # the driver's error, which SQLAlchemy's adapter raised `from`
    return found


def _unavailable_cause(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES:
        return True
    # asyncpg's own client-side errors for a connection that is gone (no SQLSTATE).
    return type(exc).__name__ in ("ConnectionDoesNotExistError", "ConnectionFailureError")


class Database:
    """Owns the engine and hands out sessions; `session()` is the one commit/rollback point."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        timeouts: Timeouts = ENGINE_TIMEOUTS,
        session_info: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.timeouts = timeouts
        self.engine = create_engine(url, pool_size=pool_size, timeouts=timeouts)
        # session_info: what every session carries in `session.info` (the secret box).
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, info=session_info)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def ping(self) -> None:
        """One round trip to the database; raises if it cannot be reached."""
        async with self.session() as session:
            await session.execute(text("SELECT 1"))

    async def inspect(self, probe: Callable[[Connection], T]) -> T:
        """One round trip, then `probe` on the same connection (the health checks read the schema's
        revision this way); raises if the database cannot be reached."""
        async with self.session() as session:
            await session.execute(text("SELECT 1"))
            return await session.run_sync(lambda sync: probe(sync.connection()))

    async def dispose(self) -> None:
        await self.engine.dispose()


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; every stored datetime is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def epoch_bucket(session: AsyncSession, column: Any, bucket_s: int) -> Any:
    """The UNIX time of the start of the `bucket_s`-second bucket that the time `column` falls in, for
    a GROUP BY (PostgreSQL reads the epoch; SQLite keeps UTC times as text, which strftime reads)."""
    seconds: Any
    if session.get_bind().dialect.name == "postgresql":
        seconds = func.floor(func.extract("epoch", column))
    else:
        seconds = func.cast(func.strftime("%s", column), Integer)
    return func.floor(seconds / bucket_s) * bucket_s


def _insert_for(session: AsyncSession, table: Any) -> Any:
    """The dialect's INSERT, the one that knows ON CONFLICT."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def insert_ignore_from(session: AsyncSession, table: Any, columns: list[str], query: Any) -> Any:
    """INSERT INTO table (columns) <query> ON CONFLICT DO NOTHING, on either database."""
    return _insert_for(session, table).from_select(columns, query).on_conflict_do_nothing()


async def insert_ignore(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> int:
    """INSERT … ON CONFLICT DO NOTHING on either database; returns how many rows were inserted."""
    if not rows:
        return 0
    result = await session.execute(_insert_for(session, table).on_conflict_do_nothing(), rows)
    return int(getattr(result, "rowcount", 0) or 0)

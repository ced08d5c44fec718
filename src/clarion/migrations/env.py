"""Alembic environment: runs migrations through Clarion's async engine."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from clarion.db import create_engine
from clarion.models import Base

target_metadata = Base.metadata
# An arbitrary constant naming Clarion's migration lock among PostgreSQL advisory locks.
MIGRATION_LOCK_KEY = 0x436C6172


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Many processes may start at once: one migrates, the others wait and find it done.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def _main(url: str) -> None:
    engine = create_engine(url, pool_size=1)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


def run() -> None:
    url = context.config.attributes.get("database_url")
    if url is None:
        raise RuntimeError("clarion.migrations needs a database_url")
    asyncio.run(_main(url))


run()

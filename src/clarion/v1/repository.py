"""All SQL of /v1's own state: the Idempotency-Key records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.db import insert_ignore
from clarion.models import IdempotencyKey

# Expired records each claim forgets: more than one claim makes, so the table cannot grow past a window.
PURGE_ROWS = 10


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, scope: str, key: str, fingerprint: str, now: datetime, since: datetime) -> bool:
        """Take the key for this request (True), or find it taken within the window (False).

        The row is written in the request's own transaction, before the work: a concurrent request with
        the same key waits on PostgreSQL's unique index (SQLite's one writer) until this one commits,
        then finds the row and replays it; a request that fails rolls its row back with its work."""
        await self.session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.scope == scope, IdempotencyKey.key == key, IdempotencyKey.created_at < since
            )
        )
        await self.purge(since)
        row = {"scope": scope, "key": key, "fingerprint": fingerprint, "status": 0, "created_at": now}
        return await insert_ignore(self.session, IdempotencyKey.__table__, [row]) == 1

    async def get(self, scope: str, key: str) -> IdempotencyKey | None:
        query = select(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def answer(self, scope: str, key: str, status: int, response: Any) -> None:
        await self.session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
            .values(status=status, response=response)
            .execution_options(synchronize_session=False)
        )

    async def purge(self, before: datetime) -> int:
        """Forget up to PURGE_ROWS records older than `before` (the window): each claim purges a few, so
        the table holds about a window's keys without a periodic job."""
        old = select(IdempotencyKey.scope, IdempotencyKey.key).where(IdempotencyKey.created_at < before)
        result = await self.session.execute(
            delete(IdempotencyKey).where(
                tuple_(IdempotencyKey.scope, IdempotencyKey.key).in_(old.limit(PURGE_ROWS))
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

"""Idempotency-Key records: a key is taken again once its window has passed, and claims forget
expired records as they go (the table holds about one window's keys)."""

from __future__ import annotations

from datetime import timedelta

from clarion.db import Database, utcnow
from clarion.v1.idempotency import WINDOW
from clarion.v1.repository import PURGE_ROWS, IdempotencyRepository


async def test_an_expired_key_is_taken_again_and_old_records_are_purged(db: Database) -> None:
    now = utcnow()
    long_ago = now - WINDOW - timedelta(minutes=1)
    async with db.session() as session:
        repo = IdempotencyRepository(session)
        for n in range(PURGE_ROWS + 3):
            assert await repo.claim("admin", f"old-{n}", "f", long_ago, long_ago - WINDOW)
        await repo.answer("admin", "old-0", 201, {"first": True})
        assert await repo.claim("app:1", "recent", "f", now - timedelta(hours=1), now - WINDOW)
    async with db.session() as session:
        repo = IdempotencyRepository(session)
        assert await repo.claim("admin", "old-0", "g", now, now - WINDOW)  # its window passed: taken anew
        again = await repo.get("admin", "old-0")
        assert again is not None
        assert (again.fingerprint, again.status, again.response) == ("g", 0, None)
        assert not await repo.claim("app:1", "recent", "f", now, now - WINDOW)  # still in its window
    async with db.session() as session:
        repo = IdempotencyRepository(session)
        left = [n for n in range(1, PURGE_ROWS + 3) if await repo.get("admin", f"old-{n}") is not None]
        assert left == []  # two claims, each forgetting up to PURGE_ROWS of the 12 expired records
        assert await repo.get("app:1", "recent") is not None

"""All SQL of the database-backed limiter (`pacing_buckets`)."""

from __future__ import annotations

from sqlalchemy import Table, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.db import insert_ignore
from clarion.models import PacingBucket

_buckets: Table = PacingBucket.__table__  # type: ignore[assignment]  # declarative: always a Table


class PacingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def advance(self, key: str, now: float, cost_s: float) -> float:
        """Move the bucket's next free time past `cost_s` more of sending; returns where it stood
        (never before `now`). The UPDATE holds the row's lock, so concurrent callers queue up."""
        await insert_ignore(self.session, _buckets, [{"key": key, "next_at": now}])
        c = _buckets.c
        start = case((c.next_at > now, c.next_at), else_=now)
        result = await self.session.execute(
            update(_buckets).where(c.key == key).values(next_at=start + cost_s).returning(c.next_at)
        )
        return float(result.scalar_one()) - cost_s

    async def raise_to(self, key: str, until: float) -> None:
        """A hold lasts until the latest time asked for."""
        await insert_ignore(self.session, _buckets, [{"key": key, "next_at": until}])
        c = _buckets.c
        await self.session.execute(
            update(_buckets).where(c.key == key, c.next_at < until).values(next_at=until)
        )

    async def after(self, prefix: str, now: float) -> dict[str, float]:
        """The buckets under `prefix` whose time is still to come, by the rest of their key."""
        c = _buckets.c
        query = select(c.key, c.next_at).where(c.key.startswith(prefix, autoescape=True), c.next_at > now)
        return {str(key)[len(prefix) :]: float(at) for key, at in (await self.session.execute(query)).all()}

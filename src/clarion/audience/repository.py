"""The audience's statements that run here rather than inside another: a page of ids, the span."""

from __future__ import annotations

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.audience.service import page, span


class AudienceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def chunk(self, condition: ColumnElement[bool], after_id: int, size: int) -> list[int]:
        """`page`, run: the next `size` recipient ids above `after_id`."""
        return list((await self.session.execute(page(condition, after_id, size))).scalars())

    async def span(self, condition: ColumnElement[bool]) -> tuple[int, int, int]:
        """How many recipients, and their lowest and highest ids (0, 0, 0 for none)."""
        count, lowest, highest = (await self.session.execute(span(condition))).one()
        return int(count), int(lowest or 0), int(highest or 0)

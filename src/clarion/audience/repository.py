"""The audience's one statement that runs here rather than inside another: a page of recipient ids."""

from __future__ import annotations

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.audience.service import page


class AudienceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def chunk(self, condition: ColumnElement[bool], after_id: int, size: int) -> list[int]:
        """`page`, run: the next `size` recipient ids above `after_id`."""
        return list((await self.session.execute(page(condition, after_id, size))).scalars())

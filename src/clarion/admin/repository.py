"""All SQL of the server-wide key/value state (the `meta` table)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from clarion.models import Meta


class MetaRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key: str) -> str | None:
        row = await self.session.get(Meta, key)
        return row.value if row is not None else None

    async def put(self, key: str, value: str) -> None:
        row = await self.session.get(Meta, key)
        if row is None:
            self.session.add(Meta(key=key, value=value))
        else:
            row.value = value

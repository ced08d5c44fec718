"""All SQL of processed pictures: the one writer of `pictures`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from clarion.db import insert_ignore
from clarion.models import Picture
from clarion.pictures.normalise import Processed


class PictureRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def keep(self, picture: Processed, now: datetime) -> None:
        """Store the picture unless its digest is stored already (the same bytes, from any campaign)."""
        row = {
            "digest": picture.digest,
            "content_type": picture.content_type,
            "width": picture.width,
            "height": picture.height,
            "data": picture.data,
            "created_at": now,
        }
        await insert_ignore(self.session, Picture, [row])

    async def get(self, digest: str) -> Picture | None:
        return await self.session.get(Picture, digest)

"""The audience's statements that run here rather than inside another: a `tags` audience's tag ids,
a page of recipient ids, and the span a fan-out is cut by."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.audience.service import Recipients, campaign_tags, page, recipients, span
from clarion.models import Campaign, Tag


class AudienceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def recipients(self, campaign: Campaign, platforms: Iterable[str]) -> Recipients:
        """`audience.service.recipients` for this campaign, a `tags` audience's names resolved to ids."""
        tag_ids: list[int] = []
        if campaign.audience.get("kind") == "tags":
            query = campaign_tags(campaign.app_id, campaign.id)
            tag_ids = list((await self.session.execute(query)).scalars())
        return recipients(campaign.app_id, campaign.id, campaign.audience, platforms, tag_ids)

    async def count(
        self, app_id: int, audience: dict[str, Any], platforms: Iterable[str], values: Sequence[str]
    ) -> int:
        """How many subscribers an audience not yet stored as a campaign selects (a dry run): `values`
        are its tokens, aliases or case-folded tag names."""
        tag_ids: list[int] = []
        if audience.get("kind") == "tags":
            found = select(Tag.id).where(Tag.app_id == app_id, Tag.name_folded.in_(values))
            tag_ids = list((await self.session.execute(found)).scalars())
        condition = recipients(app_id, 0, audience, platforms, tag_ids, values)
        return (await self.span(condition))[0]

    async def chunk(self, condition: Recipients, after_id: int, size: int) -> list[int]:
        """`page`, run: the next `size` recipient ids above `after_id`."""
        return list((await self.session.execute(page(condition, after_id, size))).scalars())

    async def span(self, condition: Recipients) -> tuple[int, int, int]:
        """How many recipients, and their lowest and highest ids (0, 0, 0 for none)."""
        count, lowest, highest = (await self.session.execute(span(condition))).one()
        return int(count), int(lowest or 0), int(highest or 0)

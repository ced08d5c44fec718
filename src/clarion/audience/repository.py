"""The audience's statements that run here rather than inside another: a `tags` audience's tag ids,
a page of recipient ids, and the span a fan-out is cut by."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.audience.service import Recipients, by_platform, campaign_tags, page, recipients, span
from clarion.models import Campaign, Subscriber


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

    async def chunk(self, condition: Recipients, after_id: int, size: int) -> list[int]:
        """`page`, run: the next `size` recipient ids above `after_id`."""
        return list((await self.session.execute(page(condition, after_id, size))).scalars())

    async def span(self, condition: Recipients) -> tuple[int, int, int]:
        """How many recipients, and their lowest and highest ids (0, 0, 0 for none)."""
        count, lowest, highest = (await self.session.execute(span(condition))).one()
        return int(count), int(lowest or 0), int(highest or 0)

    async def count_by_platform(self, condition: Recipients) -> dict[str, int]:
        """Recipients per platform, without sending (an audience's dry run)."""
        rows = (await self.session.execute(by_platform(condition))).all()
        return {str(platform): int(n) for platform, n in rows}

    async def zones(self, app_id: int) -> list[str]:
        """The time zones the app's active subscribers recorded (a local-time campaign's release plan)."""
        query = (
            select(Subscriber.timezone)
            .where(Subscriber.app_id == app_id, Subscriber.active.is_(True), Subscriber.timezone.is_not(None))
            .distinct()
        )
        return [str(zone) for zone in (await self.session.execute(query)).scalars()]

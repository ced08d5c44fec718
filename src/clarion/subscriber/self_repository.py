"""SQL of the browser-authorised subscriber endpoints that SubscriberRepository does not have."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.models import Campaign, CampaignTarget, Subscriber, SubscriberTag


class SelfServiceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def detach_all(self, subscriber_id: int) -> None:
        await self.session.execute(delete(SubscriberTag).where(SubscriberTag.subscriber_id == subscriber_id))

    async def move_address(self, subscriber: Subscriber) -> bool:
        """Write the subscriber's new address; False when another subscriber of the app holds it."""
        try:
            await self.session.flush()
        except IntegrityError:
            return False
        return True

    async def campaigns_to_since(self, app_id: int, reg_id: str, push_tag: str, since: datetime) -> int:
        """Campaigns with this push_tag created since `since` whose token list names this regId."""
        query = (
            select(func.count())
            .select_from(Campaign)
            .join(CampaignTarget, CampaignTarget.campaign_id == Campaign.id)
            .where(
                Campaign.app_id == app_id,
                Campaign.push_tag == push_tag,
                Campaign.created_at >= since,
                CampaignTarget.value == reg_id,
            )
        )
        return int((await self.session.execute(query)).scalar_one())

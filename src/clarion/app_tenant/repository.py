"""All SQL about apps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.models import App, Campaign
from clarion.validation import storable


class AppRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, app: App) -> App:
        self.session.add(app)
        await self.session.flush()
        return app

    async def by_key(self, app_key: str) -> App | None:
        if not storable(app_key):  # no stored key holds such text, and PostgreSQL refuses to compare it
            return None
        result = await self.session.execute(select(App).where(App.app_key == app_key))
        return result.scalar_one_or_none()

    async def by_id(self, app_id: int) -> App | None:
        return await self.session.get(App, app_id)

    async def by_identity_hash(self, identity_hash: str) -> App | None:
        result = await self.session.execute(select(App).where(App.identity_key_hash == identity_hash))
        return result.scalar_one_or_none()

    async def lock(self, app_id: int) -> None:
        """Hold the app's row until the transaction ends, so that its quota checks run one at a time.

        A no-op UPDATE takes PostgreSQL's row lock and SQLite's write lock alike.
        """
        await self.session.execute(
            update(App)
            .where(App.id == app_id)
            .values(plan=App.plan)
            .execution_options(synchronize_session=False)
        )

    async def campaigns_created_since(self, app_id: int, since: datetime) -> int:
        query = select(func.count()).where(
            Campaign.app_id == app_id, Campaign.created_at >= since, Campaign.counts_toward_quota.is_(True)
        )
        return int((await self.session.execute(query)).scalar_one())

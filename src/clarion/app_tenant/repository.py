"""All SQL about apps and their provider credentials."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.db import insert_ignore, utcnow
from clarion.models import App, AppCredential
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

    async def secret_hash_by_key(self, app_key: str) -> tuple[int, str] | None:
        """The id and secret hash of the app with this key, or None.

        Built so that a known and an unknown key cost the same (an unknown key must not be told apart
        by timing): the aggregate answers exactly one plain row either way, NULLs when there is no
        such app (app_key is unique, so MAX is the one value), and no app object is built.
        """
        if not storable(app_key):
            return None
        query = select(func.max(App.id), func.max(App.secret_hash)).where(App.app_key == app_key)
        app_id, secret_hash = (await self.session.execute(query)).one()
        return None if app_id is None else (app_id, secret_hash)

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


class CredentialRepository:
    """Native provider credentials, one row per app and provider."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def put(self, app_id: int, provider: str, data: dict[str, Any]) -> None:
        existing = await self.session.get(AppCredential, (app_id, provider))
        if existing is None:
            row = {"app_id": app_id, "provider": provider, "data": data, "updated_at": utcnow()}
            await insert_ignore(self.session, AppCredential.__table__, [row])
        else:
            existing.data = data
            existing.updated_at = utcnow()

    async def for_app(self, app_id: int) -> dict[str, dict[str, Any]]:
        query = select(AppCredential).where(AppCredential.app_id == app_id)
        return {row.provider: row.data for row in (await self.session.execute(query)).scalars()}

"""Rules about apps: creation, authentication, plans and the free plan's daily quota."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.app_tenant import security
from clarion.app_tenant.repository import AppRepository
from clarion.db import utcnow
from clarion.models import App
from clarion.provider.webpush import generate_vapid_keys

PLANS = ("free", "unlimited")
# Gravitec: "For Free plan only 10 push campaigns per day are available through API."
FREE_CAMPAIGNS_PER_DAY = 10


@dataclass(frozen=True)
class AppCreated:
    app_id: int
    app_key: str
    app_secret: str
    vapid_public_key: str
    identity_secret_key: str


async def create(session: AsyncSession, name: str, plan: str = "free") -> AppCreated:
    if plan not in PLANS:
        raise errors.InvalidField(f"plan must be one of {', '.join(PLANS)}", field="plan")
    secret, identity = security.new_secret(), security.new_secret()
    private_pem, public_key = generate_vapid_keys()
    app = App(
        name=name,
        app_key=security.new_key(),
        secret_hash=security.hash_secret(secret),
        identity_key_hash=security.hash_secret(identity),
        vapid_private_pem=private_pem,
        vapid_public_key=public_key,
        plan=plan,
        batch_push=True,
        created_at=utcnow(),
    )
    await AppRepository(session).add(app)
    return AppCreated(app.id, app.app_key, secret, public_key, identity)


async def authenticate(session: AsyncSession, app_key: str, app_secret: str) -> App:
    app = await AppRepository(session).by_key(app_key)
    valid = security.verify_secret(app_secret, app.secret_hash if app else None)
    if app is None:
        raise errors.UnknownApp(f"There is no web site with appKey: {app_key}")
    if not valid:
        raise errors.BadCredentials(f"Wrong app secret for appKey: {app_key}")
    return app


async def by_public_key(session: AsyncSession, app_key: str) -> App:
    """The subscriber API names its app by the public key alone."""
    app = await AppRepository(session).by_key(app_key)
    if app is None:
        raise errors.InvalidField(f"There is no app with app_key: {app_key}", field="app_key")
    return app


async def update(
    session: AsyncSession, app_key: str, *, plan: str | None = None, batch_push: bool | None = None
) -> App:
    app = await AppRepository(session).by_key(app_key)
    if app is None:
        raise errors.NotFound(f"There is no app with app_key: {app_key}")
    if plan is not None:
        if plan not in PLANS:
            raise errors.InvalidField(f"plan must be one of {', '.join(PLANS)}", field="plan")
        app.plan = plan
    if batch_push is not None:
        app.batch_push = batch_push
    return app


async def check_campaign_quota(session: AsyncSession, app: App) -> None:
    """Call right before storing the campaign, in the same transaction: the app stays locked until
    the commit, so concurrent requests cannot all see the 10th slot free."""
    if app.plan != "free":
        return
    repo = AppRepository(session)
    await repo.lock(app.id)
    now = utcnow()
    midnight = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    used = await repo.campaigns_created_since(app.id, midnight)
    if used >= FREE_CAMPAIGNS_PER_DAY:
        raise errors.QuotaExceeded()

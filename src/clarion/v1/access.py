"""Who calls /v1: the admin (bearer token) or one app (HTTP Basic key and secret), and which app a
route's `{app_key}` may name for that caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from clarion import errors
from clarion.admin.service import check_admin_token
from clarion.app_tenant import security
from clarion.app_tenant import service as apps
from clarion.models import App
from clarion.runtime import RuntimeDep, SessionDep

CREDENTIALS_REQUIRED = "An admin bearer token, or the app's key and secret as HTTP Basic, is required"


@dataclass(frozen=True)
class Caller:
    """The admin (`app` None) or the one app whose key and secret were presented."""

    app: App | None = None

    @property
    def is_admin(self) -> bool:
        return self.app is None


async def caller(request: Request, rt: RuntimeDep, session: SessionDep) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        await check_admin_token(session, rt.settings, value.strip())
        return Caller()
    if scheme.lower() != "basic":
        raise errors.Unauthorized(CREDENTIALS_REQUIRED)
    key, secret = security.basic_credentials(header)
    try:  # the same constant-time check as /api/v3; on /v1 a wrong pair is a 401 like a wrong token
        return Caller(await apps.authenticate(session, key, secret))
    except errors.UnknownApp:
        raise errors.Unauthorized(CREDENTIALS_REQUIRED) from None


CallerDep = Annotated[Caller, Depends(caller)]


async def require_admin(who: CallerDep) -> Caller:
    if not who.is_admin:
        raise errors.Forbidden()
    return who


AdminDep = Annotated[Caller, Depends(require_admin)]

AppKeyPath = Annotated[str, Path(description="The app's key (`app_key`)", examples=["a1b2c3d4e5f6"])]


async def scoped_app(app_key: AppKeyPath, who: CallerDep, session: SessionDep) -> App:
    """The app `{app_key}` names, if the caller may act on it. Another app's key answers 404 as an
    unknown one does, so an app's credentials tell nothing of which other apps exist."""
    if who.app is not None:
        if who.app.app_key != app_key:
            raise errors.NotFound(f"There is no app with app_key: {app_key}", field="app_key")
        return who.app
    return await apps.by_key(session, app_key)


ScopedAppDep = Annotated[App, Depends(scoped_app)]

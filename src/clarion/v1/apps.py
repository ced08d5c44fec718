"""/v1/apps: the apps (the vendor's "sites"), their secrets rotated, deleted with their data."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from clarion import errors
from clarion.app_tenant import service as apps
from clarion.models import App
from clarion.runtime import SessionDep
from clarion.subscriber import service as subscribers
from clarion.v1.access import AdminDep, CallerDep, ScopedAppDep
from clarion.v1.body import Body
from clarion.v1.idempotency import OnceDep
from clarion.v1.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, decode_cursor, page_of

router = APIRouter(prefix="/apps", tags=["Apps"])

Plan = Literal["free", "unlimited"]
Name = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00]*$")]
# The app service checks the URL rules (http(s); the icon a .jpg, .jpeg or .png); "" clears one.
SiteUrl = Annotated[str, Field(max_length=2048)]


class AppCreate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "News site"}]})

    name: Name
    plan: Plan = apps.DEFAULT_PLAN  # type: ignore[assignment]


class AppUpdate(Body):
    """Only the fields given change. `plan` is the admin's to change."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "News", "batch_push": False}]})

    name: Name | None = None
    plan: Plan | None = None
    batch_push: bool | None = None
    identity_verification: bool | None = None
    site_url: SiteUrl | None = None
    default_icon: SiteUrl | None = Field(
        default=None, description="The icon of a push that names none (a .jpg, .jpeg or .png URL)"
    )
    vapid_subject: Annotated[str, Field(max_length=255)] | None = Field(
        default=None,
        description="The contact (mailto: or https:) in the app's VAPID tokens; empty: the https site URL,"
        " else the server's CLARION_VAPID_SUBJECT",
    )
    default_timezone: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="IANA zone of subscribers that recorded none (local time); empty: UTC"
    )
    quiet_start: Annotated[str, Field(max_length=5)] | None = Field(
        default=None, description="HH:MM: quiet hours start (local time); empty clears them"
    )
    quiet_end: Annotated[str, Field(max_length=5)] | None = Field(
        default=None, description="HH:MM: quiet hours end (local time); empty clears them"
    )
    quiet_mode: Literal["hold", "drop"] | None = Field(
        default=None,
        description="Non-transactional notifications due in quiet hours: held until they end, or dropped",
    )
    frequency_cap: int | None = Field(
        default=None,
        ge=0,
        description="At most this many non-transactional notifications per subscriber in any"
        " frequency_cap_period_s (1-1000; 0: no cap). docs/pacing.md",
    )
    frequency_cap_period_s: int | None = Field(
        default=None, ge=0, description="The cap's rolling period in seconds (60-2592000; 0: no cap)"
    )


class VapidFailing(BaseModel):
    since: datetime
    origin: str
    reason: str


class AppRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "app_id": 1,
                    "app_key": "3f9c0a6e1b2d4c5e8f7a6b5c4d3e2f1a",
                    "name": "News site",
                    "plan": "unlimited",
                    "batch_push": True,
                    "identity_verification": True,
                    "vapid_public_key": "BNc…",
                    "site_url": "https://news.example.com",
                    "default_icon": None,
                    "vapid_subject": "mailto:push@news.example.com",
                    "frequency_cap": 3,
                    "frequency_cap_period_s": 86400,
                    "vapid_subject_warning": None,
                    "vapid_failing": None,
                    "created_at": "2026-01-01T00:00:00+00:00",
                }
            ]
        }
    )

    app_id: int
    app_key: str
    name: str
    plan: str
    batch_push: bool
    identity_verification: bool
    vapid_public_key: str
    site_url: str | None
    default_icon: str | None
    vapid_subject: str | None
    default_timezone: str | None
    quiet_start: str | None
    quiet_end: str | None
    quiet_mode: str
    frequency_cap: int | None = Field(description="Non-transactional notifications per subscriber per period")
    frequency_cap_period_s: int | None
    vapid_subject_warning: str | None = Field(
        description="Why the app's own VAPID subject is a placeholder Apple would refuse (None: it is not)"
    )
    vapid_failing: VapidFailing | None = Field(
        description="A push service refused the app's VAPID identity (BadJwtToken, VapidPkHashMismatch): web "
        "subscribers at that origin are not sent to until the subject changes"
    )
    created_at: datetime


class AppCreated(AppRead):
    """The new app and its two secrets, shown this once."""

    app_secret: str
    identity_secret_key: str


class SecretRotated(BaseModel):
    """A new secret, shown this once; the old one no longer works."""

    app_key: str
    app_secret: str | None = None
    identity_secret_key: str | None = None


def _read(app: App) -> AppRead:
    return AppRead.model_validate(apps.summary(app))


@router.post("", status_code=201, response_model=AppCreated, responses={409: {"description": "key reused"}})
async def create_app(body: AppCreate, _: AdminDep, session: SessionDep, once: OnceDep) -> JSONResponse:
    created = await apps.create(session, body.name, body.plan)
    app = await apps.by_key(session, created.app_key)
    answer = AppCreated(
        **_read(app).model_dump(),
        app_secret=created.app_secret,
        identity_secret_key=created.identity_secret_key,
    )
    return await once.record(201, answer)


@router.get("")
async def list_apps(
    who: CallerDep, session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Page[AppRead]:
    """Every app for the admin; an app's own credentials list that app only."""
    after = decode_cursor(cursor)
    if who.app is not None:
        mine = [who.app] if after is None or who.app.id > after else []
        return Page(items=[_read(app) for app in mine])
    items, next_cursor = page_of(await apps.page(session, after, limit + 1), limit, lambda a: a.id)
    return Page(items=[_read(app) for app in items], next_cursor=next_cursor)


@router.get("/{app_key}")
async def show_app(app: ScopedAppDep) -> AppRead:
    return _read(app)


@router.patch("/{app_key}")
async def update_app(body: AppUpdate, app: ScopedAppDep, who: CallerDep, session: SessionDep) -> AppRead:
    if body.plan is not None and not who.is_admin:
        raise errors.Forbidden("plan: only the admin token may change an app's plan", field="plan")
    changed = await apps.update(session, app.app_key, **body.model_dump(exclude_none=True))
    return _read(changed)


@router.delete("/{app_key}", status_code=204)
async def delete_app(
    app: ScopedAppDep,
    _: AdminDep,
    session: SessionDep,
    confirm: Annotated[str, Query(max_length=255, description="The app's name, repeated")],
) -> Response:
    """Delete the app with its subscribers, campaigns, credentials and statistics."""
    await apps.delete_confirmed(session, app, confirm)
    return Response(status_code=204)


@router.post("/{app_key}/rotate-secret")
async def rotate_secret(app: ScopedAppDep, session: SessionDep) -> SecretRotated:
    """A new app secret; the old one is refused from this answer on."""
    return SecretRotated(app_key=app.app_key, app_secret=await apps.rotate_secret(session, app))


class VapidKeyRead(BaseModel):
    key_id: int | None = Field(description="null: the app's current key")
    public_key: str
    current: bool
    retired_at: datetime | None
    subscribers: int = Field(description="Active web subscribers whose subscription was made with this key")


class VapidProgress(BaseModel):
    """How far the app's subscriptions have moved to its current VAPID key."""

    keys: list[VapidKeyRead]
    subscribers: int
    on_current_key: int


@router.post("/{app_key}/rotate-vapid")
async def rotate_vapid(app: ScopedAppDep, session: SessionDep) -> VapidProgress:
    """A new VAPID key pair. Subscriptions made with the old key keep being signed with it; the Web SDK
    re-subscribes each browser with the new one on its next page view; the old key is dropped once no
    active subscription uses it."""
    return VapidProgress.model_validate(await subscribers.rotate_vapid(session, app))


@router.get("/{app_key}/vapid-keys")
async def vapid_keys(app: ScopedAppDep, session: SessionDep) -> VapidProgress:
    """The app's VAPID keys (the current one first) and the active web subscribers on each."""
    return VapidProgress.model_validate(await apps.vapid_progress(session, app))


@router.post("/{app_key}/rotate-identity-key")
async def rotate_identity_key(app: ScopedAppDep, session: SessionDep) -> SecretRotated:
    """A new identity key (Swrve's Identity API, and the HMAC key of identity verification)."""
    key = await apps.rotate_identity_key(session, app)
    return SecretRotated(app_key=app.app_key, identity_secret_key=key)

"""/v1/apps/{app_key}/credentials: the native providers' credentials of an app, stored sealed and never
shown again (identifiers, fingerprints and the last check only), removed, and put to the test."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from clarion import errors
from clarion.app_tenant import credentials
from clarion.db import utcnow
from clarion.models import App
from clarion.runtime import RuntimeDep, SessionDep
from clarion.v1.access import ScopedAppDep
from clarion.v1.body import Body

router = APIRouter(prefix="/apps/{app_key}/credentials", tags=["Provider credentials"])

Provider = Literal["fcm", "apns", "wns", "adm"]


class FcmIn(Body):
    service_account: dict[str, Any] = Field(
        description="The Firebase service-account JSON (project_id, private_key, client_email, token_uri)"
    )


class ApnsIn(Body):
    key_p8: str = Field(description="The .p8 key file's text (PKCS8 PEM, P-256)")
    key_id: str = Field(min_length=1, max_length=64)
    team_id: str = Field(min_length=1, max_length=64)
    topic: str = Field(min_length=1, max_length=255, description="The app's bundle id")
    environment: Literal["production", "sandbox"] = "production"


class ClientCredentialsIn(Body):
    """WNS (package SID and secret) or ADM (security profile's client id and secret)."""

    client_id: str = Field(min_length=1, max_length=255)
    client_secret: str = Field(min_length=1, max_length=255)


class CredentialFailing(BaseModel):
    since: datetime
    reason: str


class CredentialRead(BaseModel):
    model_config = ConfigDict(
        extra="allow",  # the provider's identifiers: project_id, client_email, key_id, team_id, topic, …
        json_schema_extra={
            "examples": [
                {
                    "provider": "wns",
                    "client_id": "ms-app://s-1-15-2-…",
                    "fingerprint": "3f:9c:…",
                    "updated_at": "2026-01-01T00:00:00+00:00",
                    "last_used_at": None,
                    "last_failed_at": None,
                    "last_failure": None,
                    "failing": None,
                }
            ]
        },
    )
    provider: str
    fingerprint: str
    updated_at: datetime
    last_used_at: datetime | None
    last_failed_at: datetime | None
    last_failure: str | None
    failing: CredentialFailing | None = Field(
        description="The provider refused these credentials: nothing is sent with them until they are "
        "replaced or pass the test"
    )


class CredentialList(BaseModel):
    items: list[CredentialRead]


class CheckRead(BaseModel):
    provider: str
    ok: bool
    reason: str | None = Field(description="Why the provider refused them (or the key is unusable)")
    checked_at: datetime


async def _stored(session: SessionDep, app: App, provider: str, data: dict[str, Any]) -> CredentialRead:
    try:
        await credentials.store(session, app.app_key, provider, data)
    except errors.InvalidField as invalid:  # the field as this API's body names it
        raise errors.InvalidField(invalid.message, field=_body_field(provider, invalid.field)) from None
    [shown] = [c for c in await credentials.listing(session, app) if c["provider"] == provider]
    return CredentialRead(**shown)


def _body_field(provider: str, field: str | None) -> str:
    """`fcm.private_key` -> `service_account.private_key`, `apns.key_pem` -> `key_p8`, `wns.client_id`
    -> `client_id`: the stored credential's field as this API's body names it."""
    inner = (field or provider).partition(".")[2]
    if provider == "fcm":
        return f"service_account.{inner}" if inner else "service_account"
    if provider == "apns" and inner in ("key_pem", ""):
        return "key_p8"
    return inner or provider


@router.get("")
async def list_credentials(app: ScopedAppDep, session: SessionDep) -> CredentialList:
    return CredentialList(items=[CredentialRead(**c) for c in await credentials.listing(session, app)])


@router.put("/fcm")
async def put_fcm(body: FcmIn, app: ScopedAppDep, session: SessionDep) -> CredentialRead:
    return await _stored(session, app, "fcm", body.service_account)


@router.put("/apns")
async def put_apns(body: ApnsIn, app: ScopedAppDep, session: SessionDep) -> CredentialRead:
    data = {**body.model_dump(exclude={"key_p8"}), "key_pem": body.key_p8}
    return await _stored(session, app, "apns", data)


@router.put("/wns")
async def put_wns(body: ClientCredentialsIn, app: ScopedAppDep, session: SessionDep) -> CredentialRead:
    return await _stored(session, app, "wns", body.model_dump())


@router.put("/adm")
async def put_adm(body: ClientCredentialsIn, app: ScopedAppDep, session: SessionDep) -> CredentialRead:
    return await _stored(session, app, "adm", body.model_dump())


@router.delete("/{provider}", status_code=204)
async def remove_credentials(provider: Provider, app: ScopedAppDep, session: SessionDep) -> Response:
    await credentials.remove(session, app, provider)
    return Response(status_code=204)


@router.post("/{provider}/test")
async def test_credentials(
    provider: Provider, app: ScopedAppDep, session: SessionDep, rt: RuntimeDep
) -> CheckRead:
    """Obtain an access token (FCM, WNS, ADM) or sign a provider token (APNs); sends nothing."""
    failure = await credentials.test(session, rt.settings, app, provider)
    return CheckRead(provider=provider, ok=failure is None, reason=failure, checked_at=utcnow())

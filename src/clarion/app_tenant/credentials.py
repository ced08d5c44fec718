"""Native provider credentials per app: validated when stored, read only by the delivery engine.

Private keys and client secrets are never returned: `describe` lists what is configured without them.
They are stored sealed (secrets_box) and opened here, for the delivery engine only.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.app_tenant import service as apps
from clarion.app_tenant.repository import CredentialRepository, VapidKeyRepository, vapid_where
from clarion.config import Settings
from clarion.db import as_utc, utcnow
from clarion.models import App
from clarion.provider.check import check
from clarion.secrets_box import box_of

PROVIDERS = ("fcm", "apns", "wns", "adm")
# Which provider delivers to which subscriber platform.
PROVIDER_FOR_PLATFORM = {"android": "fcm", "ios": "apns", "wns": "wns", "adm": "adm"}
_SERVICE_ACCOUNT_KEYS = ("project_id", "private_key", "client_email", "token_uri")
# What `describe` may show of each provider's credentials: identifiers, never secrets.
_PUBLIC_FIELDS = {
    "fcm": ("project_id", "client_email"),
    "apns": ("key_id", "team_id", "topic", "environment"),
    "wns": ("client_id",),
    "adm": ("client_id",),
}


def _require(data: dict[str, Any], keys: tuple[str, ...], field: str) -> None:
    for key in keys:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise errors.InvalidField(f"{field}: {key} is required", field=f"{field}.{key}")


def validate(provider: str, data: dict[str, Any]) -> dict[str, Any]:
    if provider == "fcm":
        _require(data, _SERVICE_ACCOUNT_KEYS, "fcm")
        key = serialization.load_pem_private_key(data["private_key"].encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise errors.InvalidField("fcm: private_key must be an RSA key", field="fcm.private_key")
    elif provider == "apns":
        _require(data, ("key_pem", "key_id", "team_id", "topic"), "apns")
        key = serialization.load_pem_private_key(data["key_pem"].encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise errors.InvalidField("apns: the .p8 key must be a P-256 key", field="apns.key_pem")
    elif provider in ("wns", "adm"):
        _require(data, ("client_id", "client_secret"), provider)
    else:
        raise errors.InvalidField(f"provider must be one of {', '.join(PROVIDERS)}", field="provider")
    return data


async def store(session: AsyncSession, app_key: str, provider: str, data: dict[str, Any]) -> dict[str, Any]:
    app = await apps.by_key(session, app_key)
    try:
        validate(provider, data)
    except ValueError as exc:  # a key that cryptography cannot load
        raise errors.InvalidField(f"{provider}: the key cannot be read ({exc})", field=provider) from None
    await CredentialRepository(session).put(app.id, provider, data)
    return describe(provider, data)


def describe(provider: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"provider": provider, **{key: data.get(key) for key in _PUBLIC_FIELDS[provider]}}


async def for_app(session: AsyncSession, app_id: int) -> dict[str, dict[str, Any]]:
    """The app's credentials by provider (the delivery engine's one read of them)."""
    return await CredentialRepository(session).for_app(app_id)


def vapid_private_pem(session: AsyncSession, app: App) -> str:
    """The app's VAPID private key in clear (the delivery engine's one read of it, cached per campaign)."""
    return box_of(session).open(app.vapid_private_pem, vapid_where(app.app_key))


async def retired_vapid_keys(session: AsyncSession, app: App) -> dict[int, tuple[str, str]]:
    """The app's VAPID keys from before a rotation, in clear: id -> (private PEM, public key); the
    delivery engine's one read of them (subscriptions made with one are signed with it)."""
    return await VapidKeyRepository(session).opened(app)


def vapid_subject(app: App) -> str | None:
    """The `sub` of the app's VAPID tokens: its own, else its site URL when that is https (a page a
    push service's operator can reach it by); None leaves the server's CLARION_VAPID_SUBJECT."""
    if app.vapid_subject:
        return app.vapid_subject
    if app.site_url and app.site_url.lower().startswith("https://"):
        return app.site_url
    return None


def fingerprint(provider: str, data: dict[str, Any]) -> str:
    """What tells two credentials apart without showing them: SHA-256 of the public key (FCM, APNs)
    or of the client secret (WNS, ADM), its first 16 bytes in hex pairs."""
    if provider in ("fcm", "apns"):
        pem = data["private_key" if provider == "fcm" else "key_pem"]
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        material = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        material = str(data["client_secret"]).encode()
    return ":".join(f"{byte:02x}" for byte in hashlib.sha256(material).digest()[:16])


async def listing(session: AsyncSession, app: App) -> list[dict[str, Any]]:
    """The app's credentials: identifiers, fingerprints and their last check; never a secret."""
    return [
        {
            **describe(row.provider, data),
            "fingerprint": fingerprint(row.provider, data),
            "updated_at": as_utc(row.updated_at),
            "last_used_at": as_utc(row.last_used_at) if row.last_used_at else None,
            "last_failed_at": as_utc(row.last_failed_at) if row.last_failed_at else None,
            "last_failure": row.last_failure,
            "failing": None
            if row.failing_since is None
            else {"since": as_utc(row.failing_since), "reason": row.failing_reason},
        }
        for row, data in await CredentialRepository(session).rows(app.id)
    ]


def _known(provider: str) -> None:
    if provider not in PROVIDERS:
        raise errors.InvalidField(f"provider must be one of {', '.join(PROVIDERS)}", field="provider")


async def remove(session: AsyncSession, app: App, provider: str) -> None:
    _known(provider)
    if not await CredentialRepository(session).remove(app.id, provider):
        raise errors.NotFound(f"This app has no {provider} credentials", field="provider")


async def test(session: AsyncSession, settings: Settings, app: App, provider: str) -> str | None:
    """Obtain a token with the app's credentials (or sign one, APNs) and record the result; None when
    they work, else the provider's reason."""
    _known(provider)
    repo = CredentialRepository(session)
    data = (await repo.for_app(app.id)).get(provider)
    if data is None:
        raise errors.NotFound(f"This app has no {provider} credentials", field="provider")
    failure = await check(settings, provider, data)
    await repo.checked(app.id, provider, utcnow(), failure)
    if failure is None:  # they work again (the provider's side was fixed): sends resume
        await repo.clear_failing(app.id, provider)
    return failure

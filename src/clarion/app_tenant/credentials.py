"""Native provider credentials per app: validated when stored, read only by the delivery engine.

Private keys and client secrets are never returned: `describe` lists what is configured without them.
They are stored sealed (secrets_box) and opened here, for the delivery engine only.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.app_tenant import service as apps
from clarion.app_tenant.repository import CredentialRepository, vapid_where
from clarion.models import App
from clarion.secrets_box import box_of

PROVIDERS = ("fcm", "apns", "wns", "adm")
# Which provider delivers to which subscriber platform.
PROVIDER_FOR_PLATFORM = {"android": "fcm", "ios": "apns", "wns": "wns", "adm": "adm"}
_SERVICE_ACCOUNT_KEYS = ("project_id", "private_key", "client_email", "token_uri")
# What `describe` may show of each provider's credentials: identifiers, never secrets.
_PUBLIC_FIELDS = {
    "fcm": ("project_id", "client_email"),
    "apns": ("key_id", "team_id", "topic"),
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

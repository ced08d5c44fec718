"""All SQL about apps and their provider credentials.

Secrets are sealed here, on their way in (secrets_box): no plaintext secret is written.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.app_tenant.security import hash_secret
from clarion.db import insert_ignore, utcnow
from clarion.models import App, AppCredential, Subscriber, VapidKey
from clarion.secrets_box import SecretBox, box_of
from clarion.validation import storable

# A sealed credential is stored as {"sealed": "clarion:v1:..."}; a legacy one as the provider's fields.
_SEALED_FIELD = "sealed"


# The apps' columns that hold a secret, sealed: the VAPID private key (signs every Web Push request) and
# the identity key (keys the user-id HMACs of identity verification).
APP_SECRET_COLUMNS = ("vapid_private_pem", "identity_secret_key")


def app_secret_where(column: str, app_key: str) -> str:
    """What a sealed app secret is bound to (its associated data): its column and its app."""
    return f"apps.{column}:{app_key}"


def vapid_where(app_key: str) -> str:
    return app_secret_where("vapid_private_pem", app_key)


def identity_where(app_key: str) -> str:
    return app_secret_where("identity_secret_key", app_key)


def vapid_key_where(app_key: str, public_key: str) -> str:
    """What a retired VAPID private key is sealed to: its app and its public key."""
    return f"vapid_keys.private_pem:{app_key}:{public_key}"


def credential_where(app_id: int, provider: str) -> str:
    return f"app_credentials:{app_id}:{provider}"


def seal_credential(box: SecretBox, app_id: int, provider: str, data: dict[str, Any]) -> dict[str, Any]:
    return {_SEALED_FIELD: box.seal(json.dumps(data), credential_where(app_id, provider))}


def open_credential(box: SecretBox, app_id: int, provider: str, stored: dict[str, Any]) -> dict[str, Any]:
    sealed = stored_sealed_text(stored)
    if sealed is None:
        return stored  # legacy plaintext row, sealed by the next start-up pass
    data: dict[str, Any] = json.loads(box.open(sealed, credential_where(app_id, provider)))
    return data


def stored_sealed_text(stored: dict[str, Any]) -> str | None:
    """The sealed text of a stored credential, or None for a legacy plaintext one."""
    value = stored.get(_SEALED_FIELD)
    return value if len(stored) == 1 and isinstance(value, str) else None


class AppRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, app: App) -> App:
        """Insert a new app; its VAPID private key and identity key are given in clear and stored sealed."""
        box = box_of(self.session)
        app.vapid_private_pem = box.seal(app.vapid_private_pem, vapid_where(app.app_key))
        if app.identity_secret_key is not None:
            app.identity_secret_key = box.seal(app.identity_secret_key, identity_where(app.app_key))
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

    async def all(self) -> list[App]:
        return list((await self.session.execute(select(App).order_by(App.id))).scalars())

    async def page(self, after_id: int | None, limit: int) -> list[App]:
        """Apps in id order, after `after_id`: a page of a /v1 list (one more than asked for)."""
        query = select(App).order_by(App.id).limit(limit)
        if after_id is not None:
            query = query.where(App.id > after_id)
        return list((await self.session.execute(query)).scalars())

    async def delete(self, app: App) -> None:
        """The app and, by its foreign keys' ON DELETE CASCADE, everything that is its."""
        await self.session.delete(app)
        await self.session.flush()

    async def by_identity_hash(self, identity_hash: str) -> App | None:
        result = await self.session.execute(select(App).where(App.identity_key_hash == identity_hash))
        return result.scalar_one_or_none()

    async def change(
        self,
        app: App,
        *,
        name: str | None = None,
        plan: str | None = None,
        batch_push: bool | None = None,
        identity_verification: bool | None = None,
        site_url: str | None = None,
        default_icon: str | None = None,
        vapid_subject: str | None = None,
        timing: dict[str, str | None] | None = None,
        frequency_cap: int | None = None,
        frequency_cap_period_s: int | None = None,
    ) -> None:
        """Write the settings given (None: unchanged; "" clears a site setting, 0 the frequency cap);
        the loaded `app` shows the new values."""
        values = {
            "name": name,
            "plan": plan,
            "batch_push": batch_push,
            "identity_verification": identity_verification,
            "site_url": site_url,
            "default_icon": default_icon,
            "vapid_subject": vapid_subject,
            **(timing or {}),
            "frequency_cap": frequency_cap,
            "frequency_cap_period_s": frequency_cap_period_s,
        }
        given = {column: value for column, value in values.items() if value is not None}
        written: dict[str, object] = {
            column: None if value == "" else value for column, value in given.items()
        }
        for column in ("frequency_cap", "frequency_cap_period_s"):
            if written.get(column) == 0:
                written[column] = None
        if "vapid_subject" in written:  # a new identity: a refusal of the old one no longer holds
            written.update(vapid_failing_since=None, vapid_failing_reason=None, vapid_failing_origin=None)
        await self._write(app, written)

    async def flag_vapid_failing(self, app_id: int, origin: str, now: datetime, reason: str) -> bool:
        """Mark the app's VAPID identity as refused by the push service at `origin`, unless it is
        flagged already; True when this call flagged it (the once a refusal is reported)."""
        result = await self.session.execute(
            update(App)
            .where(App.id == app_id, App.vapid_failing_since.is_(None))
            .values(vapid_failing_since=now, vapid_failing_reason=reason[:255], vapid_failing_origin=origin)
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    async def has_subscribers_at(self, app_id: int, origin: str) -> bool:
        """Whether an active web subscriber of the app has its endpoint at this push service origin."""
        query = select(Subscriber.id).where(
            Subscriber.app_id == app_id,
            Subscriber.platform == "web",
            Subscriber.active.is_(True),
            Subscriber.address.startswith(f"{origin}/", autoescape=True),
        )
        return (await self.session.execute(query.limit(1))).first() is not None

    async def keep_identity_key(self, app: App, key: str) -> None:
        """Store the app's identity key, given in clear, sealed."""
        sealed = box_of(self.session).seal(key, identity_where(app.app_key))
        await self._write(app, {"identity_secret_key": sealed})

    async def set_secret_hash(self, app: App, secret_hash: str) -> None:
        await self._write(app, {"secret_hash": secret_hash})

    async def set_identity_key(self, app: App, key: str) -> None:
        """A new identity key, given in clear: stored sealed, with its hash (the Swrve lookup)."""
        sealed = box_of(self.session).seal(key, identity_where(app.app_key))
        await self._write(app, {"identity_secret_key": sealed, "identity_key_hash": hash_secret(key)})

    async def _write(self, app: App, values: dict[str, object]) -> None:
        if values:  # the session's copy of the row is updated too (synchronize_session's default)
            await self.session.execute(update(App).where(App.id == app.id).values(**values))

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


class VapidKeyRepository:
    """An app's VAPID keys from before its rotations, and which subscriptions still use them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def rotate(self, app: App, private_pem: str, public_key: str, now: datetime) -> int:
        """Keep the app's current pair as a retired key and make (private_pem, public_key) current; returns
        the retired key's id (the subscriber feature marks the subscriptions made with it)."""
        box = box_of(self.session)
        retired = VapidKey(
            app_id=app.id,
            public_key=app.vapid_public_key,
            private_pem=box.seal(
                box.open(app.vapid_private_pem, vapid_where(app.app_key)),
                vapid_key_where(app.app_key, app.vapid_public_key),
            ),
            created_at=app.created_at,
            retired_at=now,
        )
        self.session.add(retired)
        await self.session.flush()
        sealed = box.seal(private_pem, vapid_where(app.app_key))
        await self.session.execute(
            update(App)
            .where(App.id == app.id)
            .values(
                vapid_private_pem=sealed,
                vapid_public_key=public_key,
                vapid_failing_since=None,
                vapid_failing_reason=None,
                vapid_failing_origin=None,
            )
        )
        return retired.id

    async def retired(self, app_id: int) -> list[VapidKey]:
        query = select(VapidKey).where(VapidKey.app_id == app_id).order_by(VapidKey.id)
        return list((await self.session.execute(query)).scalars())

    async def opened(self, app: App) -> dict[int, tuple[str, str]]:
        """The app's retired keys, opened: id -> (private PEM, public key); the delivery engine's read."""
        box = box_of(self.session)
        return {
            key.id: (box.open(key.private_pem, vapid_key_where(app.app_key, key.public_key)), key.public_key)
            for key in await self.retired(app.id)
        }

    async def key_id(self, app_id: int, public_key: str) -> int | None:
        query = select(VapidKey.id).where(VapidKey.app_id == app_id, VapidKey.public_key == public_key)
        return (await self.session.execute(query.limit(1))).scalar_one_or_none()

    async def usage(self, app_id: int) -> dict[int | None, int]:
        """Active web subscribers per key id (None: the current key)."""
        query = (
            select(Subscriber.vapid_key_id, func.count())
            .where(Subscriber.app_id == app_id, Subscriber.platform == "web", Subscriber.active.is_(True))
            .group_by(Subscriber.vapid_key_id)
        )
        return {key: int(count) for key, count in (await self.session.execute(query)).all()}

    async def drop_unused(self) -> int:
        """Delete every retired key no active subscription uses any more; how many."""
        used = select(Subscriber.id).where(
            Subscriber.vapid_key_id == VapidKey.id, Subscriber.active.is_(True)
        )
        result = await self.session.execute(delete(VapidKey).where(~used.exists()))
        return int(getattr(result, "rowcount", 0) or 0)


class CredentialRepository:
    """Native provider credentials, one row per app and provider."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def put(self, app_id: int, provider: str, data: dict[str, Any]) -> None:
        data = seal_credential(box_of(self.session), app_id, provider, data)
        existing = await self.session.get(AppCredential, (app_id, provider))
        if existing is None:
            row = {"app_id": app_id, "provider": provider, "data": data, "updated_at": utcnow()}
            await insert_ignore(self.session, AppCredential.__table__, [row])
        else:
            existing.data = data
            existing.updated_at = utcnow()
            # New credentials: the refusal of the old ones says nothing about these.
            existing.failing_since = None
            existing.failing_reason = None

    async def for_app(self, app_id: int) -> dict[str, dict[str, Any]]:
        """The app's credentials by provider, opened."""
        box = box_of(self.session)
        query = select(AppCredential).where(AppCredential.app_id == app_id)
        rows = (await self.session.execute(query)).scalars()
        return {row.provider: open_credential(box, app_id, row.provider, row.data) for row in rows}

    async def rows(self, app_id: int) -> list[tuple[AppCredential, dict[str, Any]]]:
        """The app's credential rows with their data opened, by provider."""
        box = box_of(self.session)
        query = select(AppCredential).where(AppCredential.app_id == app_id).order_by(AppCredential.provider)
        rows = (await self.session.execute(query)).scalars()
        return [(row, open_credential(box, app_id, row.provider, row.data)) for row in rows]

    async def remove(self, app_id: int, provider: str) -> bool:
        result = await self.session.execute(
            delete(AppCredential).where(AppCredential.app_id == app_id, AppCredential.provider == provider)
        )
        return getattr(result, "rowcount", 0) == 1

    async def checked(self, app_id: int, provider: str, now: datetime, failure: str | None) -> None:
        """Record a check's result: used now (a token obtained), or failed now for `failure`."""
        values: dict[str, Any] = (
            {"last_used_at": now}
            if failure is None
            else {"last_failed_at": now, "last_failure": failure[:255]}
        )
        await self.session.execute(
            update(AppCredential)
            .where(AppCredential.app_id == app_id, AppCredential.provider == provider)
            .values(values)
            .execution_options(synchronize_session=False)
        )

    async def flag_failing(self, app_id: int, provider: str, now: datetime, reason: str) -> bool:
        """Mark the credentials as refused by their provider, unless they are flagged already; True
        when this call flagged them (the once a refusal is reported)."""
        result = await self.session.execute(
            update(AppCredential)
            .where(
                AppCredential.app_id == app_id,
                AppCredential.provider == provider,
                AppCredential.failing_since.is_(None),
            )
            .values(failing_since=now, failing_reason=reason[:255])
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    async def clear_failing(self, app_id: int, provider: str) -> None:
        await self.session.execute(
            update(AppCredential)
            .where(AppCredential.app_id == app_id, AppCredential.provider == provider)
            .values(failing_since=None, failing_reason=None)
            .execution_options(synchronize_session=False)
        )

    async def failing(self, app_id: int) -> dict[str, str]:
        """The app's refused credentials: provider (fcm, apns, wns, adm, or `web <origin>` for its
        VAPID identity at one push service) -> the reason."""
        native = select(AppCredential.provider, AppCredential.failing_reason).where(
            AppCredential.app_id == app_id, AppCredential.failing_since.is_not(None)
        )
        found = {str(p): str(r or "") for p, r in (await self.session.execute(native)).all()}
        vapid = select(App.vapid_failing_origin, App.vapid_failing_reason).where(
            App.id == app_id, App.vapid_failing_since.is_not(None)
        )
        for origin, reason in (await self.session.execute(vapid)).all():
            found[f"web {origin}"] = str(reason or "")
        return found


class StoredSecretRepository:
    """Every stored secret as stored, for the start-up pass and rotation (app_tenant/secrets.py)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def app_secrets(self, column: str) -> list[tuple[int, str, str]]:
        """(app id, app key, stored value) of every app holding a value in `column` (one of
        APP_SECRET_COLUMNS), locked until the transaction ends."""
        stored = App.__table__.c[column]
        query = (
            select(App.id, App.app_key, stored).where(stored.is_not(None)).order_by(App.id).with_for_update()
        )
        return [(row[0], row[1], row[2]) for row in await self.session.execute(query)]

    async def credentials(self) -> list[tuple[int, str, dict[str, Any]]]:
        query = (
            select(AppCredential.app_id, AppCredential.provider, AppCredential.data)
            .order_by(AppCredential.app_id, AppCredential.provider)
            .with_for_update()
        )
        return [(row[0], row[1], row[2]) for row in await self.session.execute(query)]

    async def set_app_secret(self, app_id: int, column: str, stored: str) -> None:
        await self.session.execute(
            update(App)
            .where(App.id == app_id)
            .values({App.__table__.c[column]: stored})
            .execution_options(synchronize_session=False)
        )

    async def vapid_keys(self) -> list[tuple[int, str, str, str]]:
        """(id, app key, public key, stored private key) of every retired VAPID key, locked."""
        query = (
            select(VapidKey.id, App.app_key, VapidKey.public_key, VapidKey.private_pem)
            .join(App, App.id == VapidKey.app_id)
            .order_by(VapidKey.id)
            .with_for_update()
        )
        return [(row[0], row[1], row[2], row[3]) for row in await self.session.execute(query)]

    async def set_vapid_key(self, key_id: int, stored: str) -> None:
        await self.session.execute(
            update(VapidKey)
            .where(VapidKey.id == key_id)
            .values(private_pem=stored)
            .execution_options(synchronize_session=False)
        )

    async def set_credential(self, app_id: int, provider: str, stored: dict[str, Any]) -> None:
        await self.session.execute(
            update(AppCredential)
            .where(AppCredential.app_id == app_id, AppCredential.provider == provider)
            .values(data=stored)
            .execution_options(synchronize_session=False)
        )

"""The proof that a caller holds a subscription: the one check behind every call on an existing subscriber.

A web subscriber's proof is its subscription's `auth` secret, the 16 random bytes (RFC 8291 §3.2) that only
the browser and Clarion know: the push service never sees it. A native subscriber's proof is its device
token (or WNS channel URI), which only the device, its push service and Clarion know. The proof travels in
the X-Clarion-Subscription-Auth header and is compared in constant time; an unknown regId is compared
against a dummy and refused exactly like a wrong proof, so the answer tells nothing about which regIds
exist. The app secret is never used here: it must not reach a web page or an app.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.app_tenant import service as apps
from clarion.models import App, Subscriber
from clarion.subscriber.repository import SubscriberRepository

AUTH_HEADER = "X-Clarion-Subscription-Auth"
# Compared against when there is no subscriber, so that every refusal costs about the same.
_NO_SECRET = "-" * 22


@dataclass(frozen=True)
class SubscriptionCredentials:
    app_key: str
    reg_id: str
    auth: str | None


def _secret(subscriber: Subscriber) -> str | None:
    return subscriber.auth if subscriber.platform == "web" else subscriber.address


def holds(subscriber: Subscriber | None, proof: str | None) -> bool:
    """Whether `proof` is this subscriber's secret, compared in constant time (hmac.compare_digest:
    its time depends on the lengths only, never on where the first differing byte is)."""
    stored = _secret(subscriber) if subscriber is not None else None
    matches = hmac.compare_digest((proof or "").encode(), (stored or _NO_SECRET).encode())
    return matches and bool(proof) and stored is not None


def unauthorised() -> errors.ClarionError:
    """The self-service routes' refusal (docs/sdk.md)."""
    return errors.Unauthorized("There is no subscriber with this regId and auth", field="regId")


async def authorise(
    session: AsyncSession,
    creds: SubscriptionCredentials,
    refused: Callable[[], errors.ClarionError] = unauthorised,
) -> tuple[App, Subscriber]:
    """The app and subscriber the credentials prove (see `prove`)."""
    _require(creds.auth)
    app = await apps.by_public_key(session, creds.app_key)
    return app, await prove(session, app, creds.reg_id, creds.auth, refused)


async def prove(
    session: AsyncSession,
    app: App,
    reg_id: str,
    held: str | None,
    refused: Callable[[], errors.ClarionError] = unauthorised,
) -> Subscriber:
    """The app's subscriber whose proof `held` is; `refused()` for an unknown regId or a wrong proof."""
    _require(held)
    subscriber = await SubscriberRepository(session).by_reg_id(app.id, reg_id)
    proven = holds(subscriber, held)  # compared even for an unknown regId: the same cost
    if subscriber is None or not proven:
        raise refused()
    return subscriber


def _require(held: str | None) -> None:
    """A missing header is its own 401 naming the header, whatever the route: the caller forgot it."""
    if not held:
        raise errors.Unauthorized(f"The {AUTH_HEADER} header is required", field=AUTH_HEADER)

"""Credentials a push service refused: flagged once, and not used again until they are replaced.

A refusal of the app's credentials themselves (`Rejected.credentials`: a token endpoint refusing the
client secret, APNs' InvalidProviderToken, Web Push's BadJwtToken) would come back for every other
recipient on that provider. The first one flags the credential as failing (`credentials_rejected`,
one conditional UPDATE, so it happens once however many workers see it); from then on the campaign's
remaining recipients there end `rejected` with `NOT_SENT` as their reason, without a request each.
Replacing the credentials (or a passing /v1 test) clears the flag. For Web Push the credential is the
app's VAPID identity, and what is flagged is its refusal by one push service's origin: Apple may
refuse a subject that Google and Mozilla accept.

Each process knows the flags of an app for `KNOWN_FOR_S` (a flag set elsewhere, or cleared, is seen
that much later; one set here is known at once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import metrics
from clarion.app_tenant.credentials import PROVIDER_FOR_PLATFORM
from clarion.app_tenant.repository import AppRepository, CredentialRepository
from clarion.db import Database, utcnow
from clarion.delivery.failures import origin_of
from clarion.event import service as events
from clarion.event.types import EventType
from clarion.provider.outcome import CHANNEL_PREFIX, Rejected

log = logging.getLogger("clarion.delivery")

# 5 s: how stale a process's view of an app's flags may be; one read per app and 5 s instead of one
# per job keeps the flags off the delivery path's cost.
KNOWN_FOR_S = 5.0
# How a recipient that was not sent to for refused credentials ends in the ledger.
NOT_SENT_PREFIX = f"{CHANNEL_PREFIX}not sent, "
NOT_SENT = NOT_SENT_PREFIX + "the app's {what} were refused ({reason}); replace them to send again"
WEB = "web "


def key_of(platform: str, address: str) -> str:
    """What a refusal is about: the native provider (fcm, apns, wns, adm), or `web <origin>`."""
    if platform == "web":
        return WEB + origin_of(platform, address)
    return PROVIDER_FOR_PLATFORM.get(platform, platform)


def not_sent(key: str, reason: str) -> Rejected:
    what = f"VAPID credentials at {key[len(WEB) :]}" if key.startswith(WEB) else f"{key} credentials"
    return Rejected(NOT_SENT.format(what=what, reason=reason))


class RefusedCredentials:
    """This process's view of which apps' credentials are flagged as failing."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._known: dict[int, tuple[float, dict[str, str]]] = {}

    async def load(self, session: AsyncSession, app_id: int) -> None:
        known = self._known.get(app_id)
        if known is not None and self._clock() - known[0] < KNOWN_FOR_S:
            return
        self._known[app_id] = (self._clock(), await CredentialRepository(session).failing(app_id))

    def any(self, app_id: int) -> bool:
        known = self._known.get(app_id)
        return known is not None and bool(known[1])

    def refusal(self, app_id: int, key: str) -> str | None:
        known = self._known.get(app_id)
        return None if known is None else known[1].get(key)

    def note(self, app_id: int, refusals: Mapping[str, str]) -> None:
        known = self._known.get(app_id)
        flags = {} if known is None else dict(known[1])
        flags.update(refusals)
        self._known[app_id] = (self._clock() if known is None else known[0], flags)


async def credentials_rejected(db: Database, app_id: int, refusals: Mapping[str, str]) -> list[str]:
    """The moment a provider refused an app's credentials: each is flagged as failing with the reason
    and the time, counted and logged, once; returns the keys this call flagged (those already flagged
    are left as they are)."""
    now = utcnow()
    flagged = []
    async with db.session() as session:
        for key, reason in sorted(refusals.items()):
            if key.startswith(WEB):
                origin = key[len(WEB) :]
                fresh = await AppRepository(session).flag_vapid_failing(app_id, origin, now, reason)
            else:
                fresh = await CredentialRepository(session).flag_failing(app_id, key, now, reason)
            if fresh:
                flagged.append(key)
                # Announced once, with the flag (docs/webhooks.md): `provider` as the metric names it.
                provider = "webpush" if key.startswith(WEB) else key
                data = {"provider": provider, "reason": reason}
                await events.record(session, app_id, EventType.CREDENTIALS_REJECTED, data)
    for key in flagged:
        provider = "webpush" if key.startswith(WEB) else key
        metrics.credentials_rejected(provider)
        log.warning(
            "app %s: %s refused the app's credentials (%s); nothing more is sent with them until they "
            "are replaced",
            app_id,
            key,
            refusals[key],
            extra={"app_id": app_id, "provider": provider},
        )
    return flagged

"""Rules about apps: creation, authentication, the lookup by app_key, and plans."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors, validation
from clarion.app_tenant import security
from clarion.app_tenant.repository import AppRepository, VapidKeyRepository, identity_where
from clarion.db import as_utc, utcnow
from clarion.models import App
from clarion.provider.webpush import generate_vapid_keys
from clarion.secrets_box import box_of
from clarion.validation import clickable_url_problem, http_url_problem, storable

log = logging.getLogger("clarion.app_tenant")

PLANS = ("free", "unlimited")
# Quiet hours: notifications held until the window ends, or dropped (docs/scheduling.md).
QUIET_MODES = ("hold", "drop")
# Gravitec: "For Free plan only 10 push campaigns per day are available through API."
FREE_CAMPAIGNS_PER_DAY = 10


@dataclass(frozen=True)
class AppCreated:
    app_id: int
    app_key: str
    app_secret: str
    vapid_public_key: str
    identity_secret_key: str


# An app's name (apps.name is VARCHAR(255)); a site URL or default icon, as long as a Gravitec push's
# icon may be (its MAX_TEXT).
MAX_NAME = 255
MAX_URL = 1000

# A self-hosted server has no reason to ration its owner: the vendor's free plan is opt-in.
DEFAULT_PLAN = "unlimited"


def _check_name(name: str) -> None:
    if not (1 <= len(name) <= MAX_NAME and storable(name)):
        raise errors.InvalidField(
            f"name must be 1-{MAX_NAME} characters without NUL characters", field="name"
        )


async def create(session: AsyncSession, name: str, plan: str = DEFAULT_PLAN) -> AppCreated:
    _check_name(name)
    if plan not in PLANS:
        raise errors.InvalidField(f"plan must be one of {', '.join(PLANS)}", field="plan")
    secret, identity = security.new_secret(), security.new_secret()
    private_pem, public_key = generate_vapid_keys()
    app = App(
        name=name,
        app_key=security.new_key(),
        secret_hash=security.hash_secret(secret),
        identity_key_hash=security.hash_secret(identity),
        identity_secret_key=identity,
        identity_verification=True,
        vapid_private_pem=private_pem,
        vapid_public_key=public_key,
        plan=plan,
        batch_push=True,
        created_at=utcnow(),
    )
    await AppRepository(session).add(app)
    return AppCreated(app.id, app.app_key, secret, public_key, identity)


async def authenticate(session: AsyncSession, app_key: str, app_secret: str) -> App:
    """The app of a key and secret pair. An unknown key and a wrong secret are refused alike, with
    the same answer and the same work (a secret is hashed and compared either way), so the answer
    tells nothing about which keys exist."""
    repo = AppRepository(session)
    found = await repo.secret_hash_by_key(app_key)
    valid = security.verify_secret(app_secret, found[1] if found else None)
    app = await repo.by_id(found[0]) if found and valid else None
    if app is None:
        raise errors.UnknownApp(f"There is no web site with appKey: {app_key}")
    return app


async def by_key(session: AsyncSession, app_key: str) -> App:
    """The app an app_key names: the one lookup by key, and the one error when there is none.

    (Gravitec's `authenticate` answers an unknown key with the vendor's own 403 instead.)
    """
    app = await AppRepository(session).by_key(app_key)
    if app is None:
        raise errors.NotFound(f"There is no app with app_key: {app_key}", field="app_key")
    return app


async def by_public_key(session: AsyncSession, app_key: str) -> App:
    """`by_key` for the subscriber API, where the key is one of the request's fields: an unknown key
    is an invalid field there (422, docs/sdk.md), with the same message."""
    try:
        return await by_key(session, app_key)
    except errors.NotFound as unknown:
        raise errors.InvalidField(unknown.message, field="app_key") from None


async def update(
    session: AsyncSession,
    app_key: str,
    *,
    plan: str | None = None,
    batch_push: bool | None = None,
    identity_verification: bool | None = None,
    identity_secret_key: str | None = None,
    name: str | None = None,
    site_url: str | None = None,
    default_icon: str | None = None,
    vapid_subject: str | None = None,
    default_timezone: str | None = None,
    quiet_start: str | None = None,
    quiet_end: str | None = None,
    quiet_mode: str | None = None,
    frequency_cap: int | None = None,
    frequency_cap_period_s: int | None = None,
) -> App:
    """Change an app's settings; None leaves one unchanged, "" clears the site URL, the default icon,
    the VAPID subject, the default time zone or the quiet hours (start and end together), and 0 the
    frequency cap (both of its numbers)."""
    app = await by_key(session, app_key)
    if name is not None:
        _check_name(name)
    if plan is not None and plan not in PLANS:
        raise errors.InvalidField(f"plan must be one of {', '.join(PLANS)}", field="plan")
    _check_site_settings(site_url, default_icon)
    if vapid_subject:
        _check_vapid_subject(vapid_subject)
        await _refuse_placeholder_for_apple(session, app, vapid_subject)
    timing = _timing(app, default_timezone, quiet_start, quiet_end, quiet_mode)
    if identity_secret_key is not None:
        await _keep_identity_key(session, app, identity_secret_key)
    if identity_verification and identity_key(session, app) is None:
        raise errors.InvalidField(
            "This app was created before identity verification and Clarion does not hold its "
            "identity key: give it with --identity-secret-key",
            field="identity_secret_key",
        )
    if frequency_cap is not None or frequency_cap_period_s is not None:
        frequency_cap, frequency_cap_period_s = _frequency_cap(app, frequency_cap, frequency_cap_period_s)
    repo = AppRepository(session)
    await repo.change(
        app,
        frequency_cap=frequency_cap,
        frequency_cap_period_s=frequency_cap_period_s,
        name=name,
        plan=plan,
        batch_push=batch_push,
        identity_verification=identity_verification,
        site_url=site_url,
        default_icon=default_icon,
        vapid_subject=vapid_subject,
        timing=timing,
    )
    return app


def _timing(
    app: App, zone: str | None, quiet_start: str | None, quiet_end: str | None, quiet_mode: str | None
) -> dict[str, str | None]:
    """The time settings to write: the default zone (IANA) and quiet hours (HH:MM, both or neither)."""
    if zone:
        validation.time_zone(zone, "default_timezone")
    for value, field in ((quiet_start, "quiet_start"), (quiet_end, "quiet_end")):
        if value:
            validation.clock_time(value, field)
    if quiet_mode is not None and quiet_mode not in QUIET_MODES:
        raise errors.InvalidField("quiet_mode: must be hold or drop", field="quiet_mode")
    start = app.quiet_start if quiet_start is None else quiet_start or None
    end = app.quiet_end if quiet_end is None else quiet_end or None
    if (start is None) != (end is None) or (start is not None and start == end):
        raise errors.InvalidField(
            'quiet_start and quiet_end: give both (two different HH:MM times), or clear both with ""',
            field="quiet_end" if start is not None else "quiet_start",
        )
    return {
        "default_timezone": zone,
        "quiet_start": quiet_start,
        "quiet_end": quiet_end,
        "quiet_mode": quiet_mode,
    }


# The longest rolling period of a frequency cap: 30 days, the ledger's default retention (the cap
# counts the sends the ledger still holds).
MAX_CAP_PERIOD_S = 30 * 86_400
MAX_CAP = 1000


def _frequency_cap(app: App, cap: int | None, period_s: int | None) -> tuple[int, int]:
    """At most `cap` non-transactional notifications per subscriber in any `period_s` seconds; 0
    (either) clears both; one given alone keeps the other's stored value."""
    cap = app.frequency_cap or 0 if cap is None else cap
    period_s = app.frequency_cap_period_s or 0 if period_s is None else period_s
    if cap == 0 or period_s == 0:
        return 0, 0
    if not 1 <= cap <= MAX_CAP:
        raise errors.InvalidField(f"frequency_cap must be 0 (none) or 1-{MAX_CAP}", field="frequency_cap")
    if not 60 <= period_s <= MAX_CAP_PERIOD_S:
        raise errors.InvalidField(
            f"frequency_cap_period_s must be 0 (none) or 60-{MAX_CAP_PERIOD_S} seconds",
            field="frequency_cap_period_s",
        )
    return cap, period_s


def _check_vapid_subject(subject: str) -> None:
    """RFC 8292 §2.1: a mailto: or https: URI a push service can reach the operator by. Apple refuses
    a placeholder such as mailto:…@localhost (403 BadJwtToken), so an app sets a real one."""
    scheme = subject.split(":", 1)[0].lower()
    if scheme not in ("mailto", "https") or clickable_url_problem(subject) is not None or len(subject) > 255:
        raise errors.InvalidField(
            "vapid_subject: must be a mailto: or https: URI of at most 255 characters", field="vapid_subject"
        )


# Apple's Web Push service: its endpoints' origin, where a placeholder subject is answered 403 BadJwtToken.
APPLE_WEB_PUSH = "https://web.push.apple.com"
# Domains reserved for examples and tests (RFC 2606, RFC 6761) and local names: no one reads mail there.
_PLACEHOLDER_DOMAINS = ("localhost", "example.com", "example.net", "example.org")
_PLACEHOLDER_SUFFIXES = (
    ".localhost",
    ".local",
    ".example",
    ".test",
    ".invalid",
    ".internal",
    ".example.com",
    ".example.net",
    ".example.org",
)


def placeholder_problem(subject: str) -> str | None:
    """Why a VAPID subject is a placeholder no push service operator can reach (None: it is not)."""
    scheme, _, rest = subject.partition(":")
    if scheme.lower() == "mailto":
        host = rest.rpartition("@")[2]
    else:
        host = rest.removeprefix("//").split("/", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
    host = host.lower().rstrip(".")
    if not host or ("." not in host and host != "localhost"):
        return f"{host or 'no domain'} is not a public domain"
    if host in _PLACEHOLDER_DOMAINS or host.endswith(_PLACEHOLDER_SUFFIXES):
        return f"{host} is a placeholder domain"
    if host.replace(".", "").isdigit() or host.startswith("["):
        return f"{host} is an address, not a domain"
    return None


def vapid_subject_warning(subject: str | None) -> str | None:
    """The warning an app with a placeholder subject is shown (None: no warning)."""
    problem = None if subject is None else placeholder_problem(subject)
    if problem is None:
        return None
    return (
        f"vapid_subject: {problem}; Apple's push service refuses such a subject (403 BadJwtToken), so "
        "Safari subscribers would receive nothing"
    )


async def _refuse_placeholder_for_apple(session: AsyncSession, app: App, subject: str) -> None:
    """A placeholder subject is refused for an app with Safari subscribers (Apple would refuse every
    message to them), and accepted with a warning (`vapid_subject_warning`) otherwise."""
    warning = vapid_subject_warning(subject)
    if warning is None:
        return
    if await AppRepository(session).has_subscribers_at(app.id, APPLE_WEB_PUSH):
        raise errors.InvalidField(f"{warning}, and this app has Safari subscribers", field="vapid_subject")
    log.warning("app %s: %s", app.app_key, warning, extra={"app_key": app.app_key})


def _check_site_settings(site_url: str | None, default_icon: str | None) -> None:
    """The site's address and its default icon (a Gravitec icon's rules: an http(s) URL of a .jpg,
    .jpeg or .png picture)."""
    for field, value, images_only in (("site_url", site_url, False), ("default_icon", default_icon, True)):
        problem = http_url_problem(value, images_only=images_only) if value else None
        if problem is None and value is not None and len(value) > MAX_URL:
            problem = f"must be at most {MAX_URL} characters"
        if problem is not None:
            raise errors.InvalidField(f"{field}: {problem}", field=field)


async def all_apps(session: AsyncSession) -> list[App]:
    return await AppRepository(session).all()


async def page(session: AsyncSession, after_id: int | None, limit: int) -> list[App]:
    """Apps in id order after `after_id`, `limit` of them."""
    return await AppRepository(session).page(after_id, limit)


async def rotate_secret(session: AsyncSession, app: App) -> str:
    """A new app secret, returned once; the old one is refused from this commit on (each request
    reads the stored hash)."""
    secret = security.new_secret()
    await AppRepository(session).set_secret_hash(app, security.hash_secret(secret))
    return secret


async def retire_vapid_key(session: AsyncSession, app: App) -> int:
    """A new VAPID key pair for the app, the current one kept as a retired key; returns its id (the
    subscriber feature's `rotate_vapid` marks the subscriptions made with it)."""
    private_pem, public_key = generate_vapid_keys()
    return await VapidKeyRepository(session).rotate(app, private_pem, public_key, utcnow())


async def vapid_progress(session: AsyncSession, app: App) -> dict[str, Any]:
    """How far the app's subscriptions have moved to its current VAPID key: active web subscribers per
    key, the current one first."""
    repo = VapidKeyRepository(session)
    usage = await repo.usage(app.id)
    keys: list[dict[str, Any]] = [
        {
            "key_id": None,
            "public_key": app.vapid_public_key,
            "current": True,
            "retired_at": None,
            "subscribers": usage.get(None, 0),
        }
    ]
    for key in await repo.retired(app.id):
        keys.append(
            {
                "key_id": key.id,
                "public_key": key.public_key,
                "current": False,
                "retired_at": as_utc(key.retired_at).isoformat(),
                "subscribers": usage.get(key.id, 0),
            }
        )
    return {"keys": keys, "subscribers": sum(usage.values()), "on_current_key": usage.get(None, 0)}


async def drop_unused_vapid_keys(session: AsyncSession) -> int:
    """Forget every app's retired VAPID keys that no active subscription uses any more; how many."""
    return await VapidKeyRepository(session).drop_unused()


async def vapid_key_id(session: AsyncSession, app: App, public_key: str | None, field: str) -> int | None:
    """Which of the app's VAPID keys a browser subscribed with: None for the current one (or when it
    does not say), a retired key's id, else a 422 naming `field`."""
    if public_key is None or public_key == app.vapid_public_key:
        return None
    found = await VapidKeyRepository(session).key_id(app.id, public_key)
    if found is None:
        raise errors.InvalidField(f"{field}: not one of this app's VAPID keys", field=field)
    return found


async def rotate_identity_key(session: AsyncSession, app: App) -> str:
    """A new Swrve identity key (and HMAC key of identity verification), returned once."""
    key = security.new_secret()
    await AppRepository(session).set_identity_key(app, key)
    return key


async def delete_confirmed(session: AsyncSession, app: App, confirm: str) -> None:
    """Delete an app with all its data, if `confirm` repeats its name (a guard against a wrong key)."""
    if confirm != app.name:
        raise errors.InvalidField("confirm: must repeat the app's name exactly", field="confirm")
    await AppRepository(session).delete(app)


async def delete(session: AsyncSession, app_key: str) -> App:
    """Delete an app with its subscribers, campaigns, credentials and statistics."""
    app = await by_key(session, app_key)
    await AppRepository(session).delete(app)
    return app


def summary(app: App) -> dict[str, Any]:
    """What an operator sees of an app (its secrets are never shown again)."""
    return {
        "app_id": app.id,
        "app_key": app.app_key,
        "name": app.name,
        "plan": app.plan,
        "batch_push": app.batch_push,
        "identity_verification": app.identity_verification,
        "site_url": app.site_url,
        "default_icon": app.default_icon,
        "vapid_subject": app.vapid_subject,
        "default_timezone": app.default_timezone,
        "quiet_start": app.quiet_start,
        "quiet_end": app.quiet_end,
        "quiet_mode": app.quiet_mode or "hold",
        "frequency_cap": app.frequency_cap,
        "frequency_cap_period_s": app.frequency_cap_period_s,
        "vapid_subject_warning": vapid_subject_warning(app.vapid_subject),
        "vapid_failing": None
        if app.vapid_failing_since is None
        else {
            "since": as_utc(app.vapid_failing_since).isoformat(),
            "origin": app.vapid_failing_origin,
            "reason": app.vapid_failing_reason,
        },
        "vapid_public_key": app.vapid_public_key,
        "created_at": as_utc(app.created_at).isoformat(),
    }


async def _keep_identity_key(session: AsyncSession, app: App, key: str) -> None:
    """Store the identity key of an app that has only its hash (created before migration 0007)."""
    if not security.verify_secret(key, app.identity_key_hash):
        raise errors.InvalidField("This is not the app's identity key", field="identity_secret_key")
    await AppRepository(session).keep_identity_key(app, key)


def identity_key(session: AsyncSession, app: App) -> str | None:
    """The app's Swrve identity key, which keys the user-id HMACs of identity verification; None for an
    app created before migration 0007 whose key was never given back.

    The one reader of the `apps.identity_secret_key` column, which holds it sealed (docs/security.md,
    "Secrets at rest"); a legacy plaintext value reads as it is until the start-up pass seals it.
    """
    stored = app.identity_secret_key
    return None if stored is None else box_of(session).open(stored, identity_where(app.app_key))

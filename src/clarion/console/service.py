"""Rules about console operators: accounts, passwords, sign-in (throttled), sessions, CSRF and roles."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.console.repository import OperatorRepository
from clarion.db import utcnow
from clarion.models import Operator, OperatorRole, OperatorSession

ROLES = tuple(role.value for role in OperatorRole)
# NIST SP 800-63B §5.1.1.2: memorized secrets of at least 8 characters; 10 here, no other rule.
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # an Argon2 input of any size costs the same; this bounds the form only
MAX_EMAIL = 320  # RFC 3696 errata: 64 + 1 + 255
SESSION_LIFETIME = timedelta(hours=12)
# Wrong passwords in a row (per email) that are answered at once; the next ones wait, doubling.
FREE_FAILURES = 4
FIRST_WAIT_S = 30
MAX_WAIT_S = 900
MAX_TRACKED = 10_000  # emails with wrong passwords remembered at once (about 1 MB)

# What each role may do, cumulatively: viewer < editor < admin.
_RANK = {OperatorRole.VIEWER: 0, OperatorRole.EDITOR: 1, OperatorRole.ADMIN: 2}
# editor: send campaigns, edit a site's name, segments; admin: also sites, credentials and operators.
ACTIONS = {"read": OperatorRole.VIEWER, "edit": OperatorRole.EDITOR, "manage": OperatorRole.ADMIN}


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2-cffi's defaults: Argon2id, RFC 9106's low-memory profile


@cache
def _dummy_hash() -> str:
    """What an unknown email's password is checked against, so that it costs what a known one does."""
    return _hasher().hash(secrets.token_urlsafe(16))


def normalized_email(email: str) -> str:
    return email.strip().casefold()


def may(role: str, action: str) -> bool:
    return _RANK[OperatorRole(role)] >= _RANK[ACTIONS[action]]


def require(role: str, action: str) -> None:
    if not may(role, action):
        raise errors.Forbidden("Your role does not allow this")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def create_operator(session: AsyncSession, email: str, role: str, password: str) -> Operator:
    email = normalized_email(email)
    local, at, domain = email.rpartition("@")
    if not (at and local and domain) or len(email) > MAX_EMAIL:
        raise errors.InvalidField("email must be an email address", field="email")
    if role not in ROLES:
        raise errors.InvalidField(f"role must be one of {', '.join(ROLES)}", field="role")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise errors.InvalidField(
            f"password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters", field="password"
        )
    repo = OperatorRepository(session)
    if await repo.by_email(email) is not None:
        raise errors.InvalidField(f"There is an operator {email} already", field="email")
    password_hash = await asyncio.to_thread(_hasher().hash, password)
    return await repo.add(Operator(email=email, password_hash=password_hash, role=role, created_at=utcnow()))


async def operators(session: AsyncSession) -> list[Operator]:
    return await OperatorRepository(session).all()


async def delete_operator(session: AsyncSession, operator_id: int, acting: Operator) -> None:
    """Delete an operator account with its sessions; nobody deletes their own (the last admin stays)."""
    if operator_id == acting.id:
        raise errors.InvalidField("You cannot delete your own account", field="operator_id")
    if not await OperatorRepository(session).delete(operator_id):
        raise errors.NotFound(f"There is no operator {operator_id}", field="operator_id")


@dataclass
class SignInThrottle:
    """Wrong passwords in a row per email, in this process: past FREE_FAILURES, each attempt must
    wait (30 s, doubling up to 15 min) and is refused with 429 until then, a right password too."""

    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)

    def _now(self) -> float:
        return self.clock()

    def check(self, email: str) -> None:
        count, until = self._failures.get(email, (0, 0.0))
        wait = until - self._now()
        if count >= FREE_FAILURES and wait > 0:
            raise errors.SignInThrottled(math.ceil(wait))

    def failed(self, email: str) -> None:
        if len(self._failures) >= MAX_TRACKED and email not in self._failures:
            self._forget_oldest()
        count = self._failures.get(email, (0, 0.0))[0] + 1
        wait_s = 0 if count < FREE_FAILURES else min(MAX_WAIT_S, FIRST_WAIT_S * 2 ** (count - FREE_FAILURES))
        self._failures[email] = (count, self._now() + wait_s)
        if count > FREE_FAILURES:
            raise errors.SignInThrottled(wait_s)

    def succeeded(self, email: str) -> None:
        self._failures.pop(email, None)

    def _forget_oldest(self) -> None:
        """Bound the memory that a spray of made-up emails takes: the half whose waits end first go."""
        by_end = sorted(self._failures, key=lambda email: self._failures[email][1])
        for email in by_end[: len(by_end) // 2 + 1]:
            del self._failures[email]


@dataclass(frozen=True)
class SignedIn:
    operator: Operator
    token: str  # the cookie's value
    csrf_token: str


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def sign_in(session: AsyncSession, throttle: SignInThrottle, email: str, password: str) -> SignedIn:
    """A new session for the operator, or SignInFailed alike for an unknown email and a wrong password."""
    email = normalized_email(email)
    throttle.check(email)
    repo = OperatorRepository(session)
    operator = await repo.by_email(email)
    stored = operator.password_hash if operator is not None else _dummy_hash()
    if not await asyncio.to_thread(_verify, stored, password[:MAX_PASSWORD]) or operator is None:
        throttle.failed(email)
        raise errors.SignInFailed()
    throttle.succeeded(email)
    if _hasher().check_needs_rehash(operator.password_hash):
        await repo.set_password(operator, await asyncio.to_thread(_hasher().hash, password))
    now = utcnow()
    await repo.end_expired(now)
    token, csrf_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    row = OperatorSession(
        token_hash=_token_hash(token),
        operator_id=operator.id,
        csrf_token=csrf_token,
        created_at=now,
        valid_until=now + SESSION_LIFETIME,
    )
    await repo.add_session(row)
    return SignedIn(operator, token, csrf_token)


async def current(session: AsyncSession, token: str) -> SignedIn | None:
    """The operator a session cookie belongs to, while the session lasts."""
    if not token:
        return None
    found = await OperatorRepository(session).session_of(_token_hash(token), utcnow())
    return None if found is None else SignedIn(found[1], token, found[0].csrf_token)


async def sign_out(session: AsyncSession, token: str) -> None:
    await OperatorRepository(session).end_session(_token_hash(token))


def check_csrf(expected: str, presented: str | None) -> None:
    if not expected or not presented or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise errors.CsrfRejected()

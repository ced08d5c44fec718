"""OAuth 2 bearer tokens for the native providers: fetched once, cached until near expiry, refreshed on 401.

`TokenCache` owns the caching and the refresh-once-on-401 rule for FCM, WNS and ADM alike; what differs
is how a token is fetched: `fetch_client_credentials` (RFC 6749 §4.4) for WNS and ADM, the
service-account JWT grant (RFC 7523, the assertion signed by google-auth) for FCM; both over
pyreqwest. A fetch that fails raises `TokenUnavailable`, which carries the Outcome the send reports
instead: the token endpoint's trouble never escapes a provider as an exception.
"""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pyreqwest.client import Client
from pyreqwest.exceptions import BuilderError, RequestError

from clarion import metrics
from clarion.provider.httpio import Answer, http_reason, post_form, transport_reason
from clarion.provider.outcome import Outcome, Rejected, Retry, parse_retry_after

log = logging.getLogger("clarion.provider")

# 5 min: a token used up to its last second may expire in flight; renew this long before expiry.
REFRESH_MARGIN_S = 300.0
# A failed fetch is remembered this long, so the sends queued behind it do not each hit a token
# endpoint that is down or refusing the credentials.
FAILURE_HOLD_S = 5.0
# RFC 6749 §5.1 makes expires_in optional; an hour is what Google, Microsoft and Amazon all issue.
DEFAULT_EXPIRES_IN_S = 3600.0


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    expires_in_s: float


@dataclass(frozen=True, slots=True)
class Unauthorized:
    """The service refused the bearer token (401): a fresh token may help once."""

    reason: str


class TokenUnavailable(Exception):
    """No access token could be had; `outcome` is what the send reports instead."""

    def __init__(self, outcome: Retry | Rejected) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class TokenCache:
    """One credential's bearer token: fetched when missing or near expiry, one fetch at a time."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[AccessToken]],
        *,
        provider: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._provider = provider  # the metrics' label: fcm, wns, adm
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._failure: tuple[Retry | Rejected, float] | None = None

    async def get(self, *, stale: str | None = None) -> str:
        """The cached token, or a new one when it is near expiry or is `stale` (just refused)."""
        async with self._lock:
            now = self._clock()
            if self._token is not None and self._token != stale and now < self._renew_at:
                return self._token
            if self._failure is not None and now < self._failure[1]:
                raise TokenUnavailable(self._failure[0])
            try:
                token = await self._fetch()
            except TokenUnavailable as exc:
                metrics.token_refreshed(self._provider, ok=False)
                log.warning(
                    "%s: no access token (%s); sends wait %s s before the next try",
                    self._provider,
                    exc.outcome.reason,
                    FAILURE_HOLD_S,
                    extra={"provider": self._provider},
                )
                self._failure = (exc.outcome, self._clock() + FAILURE_HOLD_S)
                raise
            metrics.token_refreshed(self._provider, ok=True)
            self._failure = None
            # Short-lived tokens (tests, odd servers) are renewed at half-life instead of never used.
            margin = min(REFRESH_MARGIN_S, token.expires_in_s / 2)
            self._token, self._renew_at = token.value, self._clock() + token.expires_in_s - margin
            return token.value

    async def authorized(self, post: Callable[[str], Awaitable[Outcome | Unauthorized]]) -> Outcome:
        """`post` with a bearer token; on 401 once more with a fresh one, then the channel is at fault."""
        try:
            token = await self.get()
            result = await post(token)
            if isinstance(result, Unauthorized):
                result = await post(await self.get(stale=token))
        except TokenUnavailable as exc:
            return exc.outcome
        if isinstance(result, Unauthorized):
            # A fresh token refused too: the app's credentials are bad, not the device's token.
            return Rejected(
                f"channel: credentials refused after a token refresh ({result.reason})", credentials=True
            )
        return result


async def fetch_client_credentials(
    client: Client, token_url: str, *, client_id: str, client_secret: str, scope: str
) -> AccessToken:
    """The client-credentials grant (RFC 6749 §4.4) as WNS and ADM take it: a form with the secret."""
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
        "scope": scope,
    }
    answer = await request_token(client, token_url, form)
    if answer.status == 200:
        return access_token(answer.body)
    reason = f"token endpoint: {http_reason(answer.status, oauth_error(answer.body))}"
    if answer.status == 429 or 500 <= answer.status < 600:
        raise TokenUnavailable(Retry(reason, parse_retry_after(answer.retry_after, datetime.now(UTC))))
    # The token endpoint refused the client id and secret (invalid_client and the like).
    raise TokenUnavailable(Rejected(f"channel: {reason}", credentials=True))


async def request_token(client: Client, token_url: str, form: dict[str, str]) -> Answer:
    """POST a token request; a token endpoint out of reach is `TokenUnavailable(Retry)`."""
    try:
        return await post_form(client, token_url, form)
    except (RequestError, BuilderError) as exc:
        detail = transport_reason(exc) if isinstance(exc, RequestError) else f"BuilderError: {exc}"
        raise TokenUnavailable(Retry(f"token endpoint: {detail}")) from exc


def access_token(body: bytes) -> AccessToken:
    try:
        document = json.loads(body)
        value = document["access_token"]
        expires_in = float(document.get("expires_in", DEFAULT_EXPIRES_IN_S))
    except (ValueError, TypeError, KeyError):
        value, expires_in = None, 0.0
    if not isinstance(value, str) or not value or expires_in <= 0:
        raise TokenUnavailable(Rejected("channel: token endpoint answered 200 without a usable access_token"))
    return AccessToken(value, expires_in)


def oauth_error(body: bytes) -> str:
    """RFC 6749 §5.2 `error` and `error_description`, or the start of whatever the body was."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        description = document.get("error_description")
        return f"{document['error']}: {description}" if isinstance(description, str) else document["error"]
    return body.decode("utf-8", "replace")

"""APNs: notifications over HTTP/2 with token-based (.p8) provider authentication.

One `ApnsClient` per set of credentials holds one HTTP/2 connection that all its sends multiplex over,
as Apple asks ("keep your connections with APNs open across multiple notifications"), and one provider
JWT that it signs again every 40 minutes.
"""

import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from pyreqwest.exceptions import RequestError

from clarion import metrics
from clarion.content import Notification
from clarion.provider.base import (
    NO_CREDENTIALS,
    REHEARSED,
    Campaign,
    ClientPerCredential,
    Recipient,
    Transmit,
)
from clarion.provider.httpio import post, reqwest_client, transport_reason
from clarion.provider.outcome import Delivered, Gone, Outcome, Rejected, Retry, parse_retry_after
from clarion.provider.webpush import b64url_encode

# 4096 bytes: Apple's limit for a regular remote notification's payload ("Generating a remote
# notification"); APNs answers 413 PayloadTooLarge past it, so it is checked before sending.
MAX_PAYLOAD_BYTES = 4096
# Apple: apns-collapse-id "must not exceed 64 bytes".
MAX_COLLAPSE_ID_BYTES = 64
# 40 min: APNs refuses a provider token older than 60 minutes (ExpiredProviderToken) and one renewed
# more often than every 20 (TooManyProviderTokenUpdates); the middle leaves room for skew both ways.
PROVIDER_TOKEN_REFRESH_S = 40 * 60

PRIORITY_IMMEDIATE = "10"
PRIORITY_POWER_CONSIDERATE = "5"  # Apple: the only priority allowed for background notifications

# 400 reasons that are about the token itself, so the token will never work (like 410).
_GONE_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic"})
# 403 reasons a freshly signed provider token may cure.
_RENEW_REASONS = frozenset({"ExpiredProviderToken", "InvalidProviderToken"})
# 403 reasons that condemn the app's key (still refused after a fresh signature) or its environment:
# the credential is flagged as failing (docs/token-hygiene.md).
_CREDENTIAL_REASONS = frozenset(
    {"InvalidProviderToken", "BadCertificateEnvironment", "BadCertificate", "MissingProviderToken"}
)
_REASON_CHARS = 200


class ProviderToken:
    """The provider authentication JWT (ES256, `kid` = key id, `iss` = team id, `iat`), reused.

    Signing per request would cost an ECDSA signature each and, worse, trip APNs'
    TooManyProviderTokenUpdates; the token is signed again only every PROVIDER_TOKEN_REFRESH_S,
    or when APNs refused it.
    """

    def __init__(
        self, key_pem: str, *, key_id: str, team_id: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = load_p8_key(key_pem)
        self._header = b64url_encode(_compact_json({"alg": "ES256", "kid": key_id}))
        self._team_id = team_id
        self._clock = clock
        self._token: str | None = None
        self._issued_at = 0

    def current(self) -> str:
        now = int(self._clock())
        if self._token is None or now - self._issued_at >= PROVIDER_TOKEN_REFRESH_S:
            self._token, self._issued_at = self._sign(now), now
            metrics.token_refreshed("apns", ok=True)
        return self._token

    def discard(self, token: str) -> None:
        """Sign anew at the next `current()` unless `token` was already replaced.

        Many concurrent sends may see the same token refused; only the first renewal counts.
        """
        if token == self._token:
            self._token = None

    def _sign(self, issued_at: int) -> str:
        claims = b64url_encode(_compact_json({"iss": self._team_id, "iat": issued_at}))
        signing_input = f"{self._header}.{claims}"
        der = self._key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        # JWS ES256 is the raw r || s, 32 bytes each (RFC 7518 §3.4), not the DER cryptography gives.
        return f"{signing_input}.{b64url_encode(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def load_p8_key(key_pem: str) -> ec.EllipticCurvePrivateKey:
    """The private key of an Apple .p8 file (PKCS8 PEM, P-256); ValueError for anything else."""
    try:
        key = serialization.load_pem_private_key(key_pem.encode("ascii"), password=None)
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise ValueError("the APNs key is not an unencrypted PEM private key (.p8)") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("an APNs key must be a P-256 EC private key")
    return key


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    reason: str | None
    timestamp_ms: int | None
    retry_after: str | None


class ApnsClient:
    """Sends notifications to one APNs origin for one app's credentials; see the module docstring."""

    def __init__(
        self,
        *,
        base_url: str,
        key_pem: str,
        key_id: str,
        team_id: str,
        topic: str,
        ca_file: str | None,
        timeout_s: float,
        connect_timeout_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tokens = ProviderToken(key_pem, key_id=key_id, team_id=team_id, clock=clock)
        self._base_url = base_url.rstrip("/")
        self._topic = topic
        self._clock = clock
        # APNs speaks HTTP/2 only. pyreqwest, as for Web Push: the same requests through httpx + h2
        # cost ≈ 1,050 µs of CPU each, through this client ≈ 130-180 µs (python -m bench.apns_client).
        self._http = reqwest_client(
            ca_file=ca_file, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s, http2_only=True
        )

    async def send(
        self, device_token: str, message: Notification, *, token_registered_at: datetime | None = None
    ) -> Outcome:
        """POST one notification; network trouble is a `Retry`, never an exception.

        `token_registered_at` is when the device last registered this token: an Unregistered answer
        about an earlier moment is stale and deactivates nothing.
        """
        built = self.build(device_token, message)
        if isinstance(built, Rejected):
            return built
        url, body, headers = built
        jwt = self._tokens.current()
        answer = await self._post(url, body, headers, jwt)
        if isinstance(answer, _Answer) and answer.status == 403 and answer.reason in _RENEW_REASONS:
            self._tokens.discard(jwt)
            answer = await self._post(url, body, headers, self._tokens.current())
        if isinstance(answer, Retry):
            return answer
        return outcome(
            answer.status,
            answer.reason,
            retry_after=answer.retry_after,
            timestamp_ms=answer.timestamp_ms,
            token_registered_at=token_registered_at,
        )

    def rehearse(self, device_token: str, message: Notification) -> Outcome:
        """The request built and its provider token signed (or taken from the cache) as for real."""
        built = self.build(device_token, message)
        if isinstance(built, Rejected):
            return built
        self._tokens.current()
        return REHEARSED

    def build(self, device_token: str, message: Notification) -> tuple[str, bytes, dict[str, str]] | Rejected:
        """The request's URL, body and apns-* headers exactly as sent, or why APNs would refuse them."""
        body = _compact_json(build_payload(message))
        if len(body) > MAX_PAYLOAD_BYTES:
            return Rejected(f"payload is {len(body)} bytes; APNs takes at most {MAX_PAYLOAD_BYTES}")
        url = f"{self._base_url}/3/device/{quote(device_token, safe='')}"
        return url, body, build_headers(message, topic=self._topic, now_s=self._clock())

    async def _post(self, url: str, body: bytes, headers: dict[str, str], jwt: str) -> _Answer | Retry:
        try:
            answer = await post(
                self._http, url, {**headers, "authorization": f"bearer {jwt}"}, body, provider="apns"
            )
        except RequestError as exc:
            return Retry(transport_reason(exc))
        reason, timestamp_ms = _error_body(answer.body)
        return _Answer(answer.status, reason, timestamp_ms, answer.retry_after)

    async def close(self) -> None:
        await self._http.close()


# APNs' two environments (Apple: "Sending notification requests to APNs"): development builds' device
# tokens are valid only on the sandbox.
PRODUCTION_ORIGIN = "https://api.push.apple.com"
SANDBOX_ORIGIN = "https://api.sandbox.push.apple.com"


def origin_for(configured: str, environment: str | None) -> str:
    """The origin an app's credentials send to: the sandbox for a key stored as `sandbox` while
    CLARION_APNS_URL is Apple's production origin; otherwise what is configured (a test's fake, a proxy)."""
    if environment == "sandbox" and configured.rstrip("/") == PRODUCTION_ORIGIN:
        return SANDBOX_ORIGIN
    return configured


class ApnsProvider:
    """iOS devices through APNs: a client (an HTTP/2 connection and a provider token) per app key."""

    def __init__(
        self, *, base_url: str, ca_file: str | None, timeout_s: float, connect_timeout_s: float
    ) -> None:
        def client(data: dict[str, Any]) -> ApnsClient:
            return ApnsClient(
                base_url=origin_for(base_url, data.get("environment")),
                key_pem=data["key_pem"],
                key_id=data["key_id"],
                team_id=data["team_id"],
                topic=data["topic"],
                ca_file=ca_file,
                timeout_s=timeout_s,
                connect_timeout_s=connect_timeout_s,
            )

        self._clients = ClientPerCredential("apns", client)

    def prepare(self, campaign: Campaign, recipient: Recipient, now: datetime) -> Outcome | Transmit:
        client = self._clients.get(campaign)
        if client is None:
            return Rejected(NO_CREDENTIALS)
        message = campaign.message_for(recipient.params, now)
        # APNs alone needs the registration time: a stale Unregistered must not deactivate a new token.
        return functools.partial(
            client.send, recipient.address, message, token_registered_at=recipient.registered_at
        )

    def rehearse(self, campaign: Campaign, recipient: Recipient, now: datetime) -> Outcome:
        client = self._clients.get(campaign)
        if client is None:
            return Rejected(NO_CREDENTIALS)
        return client.rehearse(recipient.address, campaign.message_for(recipient.params, now))

    async def close(self) -> None:
        for client in self._clients.clear():
            await client.close()


def build_headers(message: Notification, *, topic: str, now_s: float) -> dict[str, str]:
    """The apns-* request headers, without authorization."""
    priority = PRIORITY_IMMEDIATE
    if message.silent or not message.high_priority:
        priority = PRIORITY_POWER_CONSIDERATE
    headers = {
        "apns-topic": topic,
        "apns-push-type": "background" if message.silent else "alert",
        "apns-priority": priority,
        # 0: deliver once, now, or never (Apple); otherwise a UNIX time in seconds.
        "apns-expiration": "0" if message.ttl_s <= 0 else str(int(now_s) + message.ttl_s),
    }
    if message.collapse_key:
        headers["apns-collapse-id"] = collapse_id(message.collapse_key)
    return headers


def collapse_id(key: str) -> str:
    """`key` if it is a valid apns-collapse-id (printable ASCII, ≤ 64 bytes), else a stable stand-in."""
    if key.isascii() and key.isprintable() and len(key) <= MAX_COLLAPSE_ID_BYTES:
        return key
    return hashlib.sha256(key.encode("utf-8")).hexdigest()  # 64 hex characters


def build_payload(message: Notification) -> dict[str, Any]:
    """The JSON body: the `aps` dictionary plus the app's custom keys at the top level.

    Clarion's own keys win over `message.data` keys of the same name, and `aps` is never overridden.
    """
    payload: dict[str, Any]
    if message.silent:
        payload = {"aps": {"content-available": 1}, "campaign_id": message.campaign_id}
    else:
        payload = {"aps": _aps(message), **_custom_keys(message)}
    for key, value in message.data.items():
        payload.setdefault(key, value)
    return payload


def _aps(message: Notification) -> dict[str, Any]:
    alert: dict[str, str] = {}
    if message.title:
        alert["title"] = message.title
    if message.subtitle:
        alert["subtitle"] = message.subtitle
    alert["body"] = message.message
    aps: dict[str, Any] = {"alert": alert}
    if message.badge is not None:
        aps["badge"] = message.badge
    if message.sound:
        aps["sound"] = message.sound
    if message.category:
        aps["category"] = message.category
    if message.image or message.rich_media:
        # Lets the app's notification service extension fetch the media before it is shown.
        aps["mutable-content"] = 1
    return aps


def _custom_keys(message: Notification) -> dict[str, Any]:
    keys: dict[str, Any] = {"campaign_id": message.campaign_id}
    if message.url:
        keys["url"] = message.url
    if message.image:
        keys["image"] = message.image
    if message.rich_media:
        media = message.rich_media
        keys["media"] = _without_none(
            {
                "url": media.url,
                "type": media.type,
                "title": media.title,
                "subtitle": media.subtitle,
                "message": media.message,
                "thumbnail_url": media.thumbnail_url,
            }
        )
    if message.buttons:
        keys["buttons"] = [
            _without_none({"title": b.title, "action_type": b.action_type, "action": b.action})
            for b in message.buttons
        ]
    return keys


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def outcome(
    status: int,
    reason: str | None,
    *,
    retry_after: str | None = None,
    timestamp_ms: int | None = None,
    token_registered_at: datetime | None = None,
) -> Outcome:
    """What an APNs answer means for the token, the message and the channel (the app's credentials)."""
    if status == 200:
        return Delivered(status)
    text = f"HTTP {status}: {reason}" if reason else f"HTTP {status}"
    if status == 410:
        if _registered_after(token_registered_at, timestamp_ms):
            return Rejected("stale Unregistered")
        return Gone(text)
    if status == 400 and reason in _GONE_REASONS:
        return Gone(text)
    if status == 429 or 500 <= status < 600:
        return Retry(text, parse_retry_after(retry_after, datetime.now(UTC)))
    if status == 403:
        # The provider token or the key behind it: every token of this app would fail alike.
        return Rejected(f"channel: {text}", credentials=reason in _CREDENTIAL_REASONS)
    return Rejected(text)


def _registered_after(registered_at: datetime | None, timestamp_ms: int | None) -> bool:
    """Whether the device registered the token again after APNs last found it invalid."""
    if registered_at is None or timestamp_ms is None:
        return False
    if registered_at.tzinfo is None:
        registered_at = registered_at.replace(tzinfo=UTC)
    return registered_at > datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def _error_body(body: bytes) -> tuple[str | None, int | None]:
    """APNs' error body `{"reason": "...", "timestamp": ms}`; (None, None) when absent or malformed."""
    try:
        document = json.loads(body) if body else None
    except ValueError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    reason = document.get("reason")
    timestamp = document.get("timestamp")
    return (
        " ".join(reason.split())[:_REASON_CHARS] if isinstance(reason, str) else None,
        timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else None,
    )


def _compact_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

"""Web Push: message encryption (RFC 8291), VAPID (RFC 8292) and the send itself (RFC 8030)."""

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyreqwest.client import Client
from pyreqwest.exceptions import BuilderError, RequestError

from clarion.content import Notification
from clarion.provider.base import REHEARSED, Campaign, Recipient, Transmit
from clarion.provider.guard import GuardedClients
from clarion.provider.httpio import REASON_CHARS, http_reason, post, reqwest_client, transport_reason
from clarion.provider.outcome import Delivered, Gone, Outcome, Rejected, Retry, parse_retry_after

# 3993 bytes: 4096-byte body limit (RFC 8030 §7.2) minus the 86-byte aes128gcm header
# (RFC 8188: 16 salt + 4 rs + 1 idlen + 65 key), 16-byte tag and 1 delimiter byte (RFC 8291 §4).
MAX_PLAINTEXT_BYTES = 3993
# RFC 8188 record size: 4096, the whole body a push service must accept (RFC 8030 §7.2) in one record.
RECORD_SIZE = 4096

URGENCIES = frozenset({"very-low", "low", "normal", "high"})  # RFC 8030 §5.3

# 12 h: RFC 8292 §2 allows at most 24 h; half leaves room for clock skew at the push service.
VAPID_LIFETIME_S = 12 * 3600
# Re-sign an hour before expiry so a header is never sent moments before it lapses.
VAPID_RENEW_MARGIN_S = 3600
# Endpoints come from subscribers, so the set of origins is not ours to bound; cap the cache.
_MAX_CACHED_ORIGINS = 1024

# Which subscriptions get the declarative form (CLARION_WEB_PUSH_FORM; docs/declarative-web-push.md):
# "auto" sends it to Apple's push service only, whose browsers (Safari 18.4+) show it without a worker.
WebPushForm = Literal["auto", "declarative", "classic"]
WEB_PUSH_FORMS: tuple[WebPushForm, ...] = ("auto", "declarative", "classic")
# Safari's subscriptions, on macOS, iOS and iPadOS alike, are endpoints of this one push service.
APPLE_PUSH_PREFIX = "https://web.push.apple.com/"

_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")  # RFC 8030 §5.4: at most 32 URL-safe base64 characters
_JWT_HEADER = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9"  # {"typ":"JWT","alg":"ES256"}
_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")
# Apple's Web Push reasons ("Sending web push notifications in web apps and browsers") that refuse
# the app's VAPID token or key rather than the subscription.
_VAPID_REFUSED = re.compile(rb"\b(BadJwtToken|VapidPkHashMismatch)\b")


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; browsers' standard-alphabet keys are accepted too."""
    try:
        # bytes.translate and a2b_base64: ≈ 0.9 µs against ≈ 3.9 µs for str.translate + b64decode,
        # twice per message on the delivery path.
        raw = text.strip().rstrip("=").encode("ascii").translate(_URLSAFE_TO_STD)
        return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError(f"not valid base64url ({exc})") from exc


def generate_vapid_keys() -> tuple[str, str]:
    """A new VAPID key pair: (PKCS8 PEM private key, base64url uncompressed P-256 public key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode("ascii"), _public_b64url(key)


def _public_b64url(key: ec.EllipticCurvePrivateKey) -> str:
    raw = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url_encode(raw)


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """An aes128gcm body (RFC 8291) with a fresh ephemeral key and salt, as the RFC requires."""
    return encrypt_with(
        payload,
        p256dh,
        auth,
        salt=os.urandom(16),
        sender_private=ec.generate_private_key(ec.SECP256R1()),
    )


def encrypt_with(
    payload: bytes, p256dh: str, auth: str, *, salt: bytes, sender_private: ec.EllipticCurvePrivateKey
) -> bytes:
    """`encrypt` with the salt and ephemeral key given, so RFC 8291 Appendix A can be reproduced."""
    if not payload:
        # An empty message needs no encryption: it is sent without a body (RFC 8030 §5).
        raise ValueError("an empty payload is sent without a body, not encrypted")
    if len(payload) > MAX_PLAINTEXT_BYTES:
        raise ValueError(f"payload is {len(payload)} bytes; at most {MAX_PLAINTEXT_BYTES} fit")
    receiver = b64url_decode(p256dh)
    if len(receiver) != 65 or receiver[0] != 0x04:
        raise ValueError("p256dh must be an uncompressed P-256 point (65 bytes)")
    secret = b64url_decode(auth)
    if len(secret) != 16:
        raise ValueError("auth must be a 16-byte secret (RFC 8291 §3.2)")
    return _aes128gcm(payload, receiver, secret, salt, sender_private)


def _aes128gcm(
    payload: bytes, receiver: bytes, secret: bytes, salt: bytes, sender_private: ec.EllipticCurvePrivateKey
) -> bytes:
    """RFC 8291 §3.3-3.4 and RFC 8188 §2, one record, with `cryptography`'s primitives.

    Written out rather than through http_ece (still used by the tests' push service to decrypt, so
    the two check each other): http_ece's general record machinery cost ≈ 35 µs more per message,
    a quarter of the encryption, on the path that sets Clarion's delivery rate.
    """
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), receiver)
    shared = sender_private.exchange(ec.ECDH(), public)
    sender = sender_private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    # HKDF with one output block each (RFC 5869): extract = HMAC(salt, ikm); expand = HMAC(prk, info || 1).
    prk_key = hmac.digest(secret, shared, "sha256")
    ikm = hmac.digest(prk_key, b"WebPush: info\x00" + receiver + sender + b"\x01", "sha256")
    prk = hmac.digest(salt, ikm, "sha256")
    cek = hmac.digest(prk, b"Content-Encoding: aes128gcm\x00\x01", "sha256")[:16]
    nonce = hmac.digest(prk, b"Content-Encoding: nonce\x00\x01", "sha256")[:12]
    # The last (and only) record ends with the 0x02 delimiter (RFC 8188 §2), no further padding.
    record = AESGCM(cek).encrypt(nonce, payload + b"\x02", None)
    header = salt + RECORD_SIZE.to_bytes(4, "big") + bytes([len(sender)]) + sender
    return header + record


class VapidSigner:
    """Builds `Authorization: vapid` headers (RFC 8292 §3) for one application server key.

    A header is cached per push-service origin and reused until an hour before it expires: signing
    per message would cost an ECDSA signature each, for a value that changes twice a day.
    """

    def __init__(
        self,
        private_key_pem: str,
        public_key: str,
        subject: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not subject.startswith(("mailto:", "https:")):
            raise ValueError("the VAPID subject must be a mailto: or https: URI (RFC 8292 §2.1)")
        self._key = _load_p256_private_key(private_key_pem)
        if _public_b64url(self._key) != b64url_encode(b64url_decode(public_key)):
            raise ValueError("the VAPID public key does not belong to the private key")
        self._public_key = _public_b64url(self._key)
        self._subject = subject
        self._clock = clock
        self._cache: dict[str, tuple[str, int]] = {}

    @property
    def public_key(self) -> str:
        return self._public_key

    def authorization(self, endpoint: str) -> str:
        return self.authorization_for(_cached_origin(endpoint))

    def authorization_for(self, origin: str) -> str:
        """The header for a push service origin already known (saves parsing the endpoint again)."""
        now = int(self._clock())
        cached = self._cache.get(origin)
        if cached is not None and cached[1] - now > VAPID_RENEW_MARGIN_S:
            return cached[0]
        expires = now + VAPID_LIFETIME_S
        claims: dict[str, str | int] = {"aud": origin, "exp": expires, "sub": self._subject}
        header = f"vapid t={_sign_jwt(self._key, claims)}, k={self._public_key}"
        if len(self._cache) >= _MAX_CACHED_ORIGINS:
            self._cache.clear()
        self._cache[origin] = (header, expires)
        return header


def _load_p256_private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("a VAPID key must be a P-256 EC private key")
    return key


def _sign_jwt(key: ec.EllipticCurvePrivateKey, claims: dict[str, str | int]) -> str:
    body = b64url_encode(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
    signing_input = f"{_JWT_HEADER}.{body}"
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256())))
    # JWS ES256 wants the raw r || s, 32 bytes each (RFC 7518 §3.4), not the DER that cryptography gives.
    return f"{signing_input}.{b64url_encode(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def endpoint_origin(endpoint: str) -> str:
    """scheme://host[:port] of an endpoint, the VAPID `aud` (RFC 8292 §2); default ports are dropped."""
    parts = urlsplit(endpoint)
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host:
        raise ValueError(f"not an http(s) URL: {endpoint!r}")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default_port = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" if port in (None, default_port) else f"{scheme}://{host}:{port}"


_origins: dict[str, str] = {}


def _cached_origin(endpoint: str) -> str:
    """`endpoint_origin` remembered per scheme://authority prefix, which all of a push service's
    endpoints share: parsing each endpoint again cost a few µs per message on the delivery path."""
    path_at = endpoint.find("/", endpoint.find("://") + 3)
    prefix = endpoint if path_at < 0 else endpoint[:path_at]
    origin = _origins.get(prefix)
    if origin is None:
        origin = endpoint_origin(endpoint)
        if len(_origins) >= _MAX_CACHED_ORIGINS:
            _origins.clear()
        _origins[prefix] = origin
    return origin


class WebPushRequest(NamedTuple):
    """One message to one subscription (a tuple: one is made per message, and a frozen dataclass
    costs several µs more to build)."""

    endpoint: str
    p256dh: str
    auth: str
    payload: bytes
    ttl_s: int
    urgency: str | None = None
    topic: str | None = None


def http_client(*, ca_file: str | None, timeout_s: float, connect_timeout_s: float) -> Client:
    """A Web Push client without the address guard (`send`'s, for tests and bench/http_clients.py);
    `WebPushProvider` sends through `guard.GuardedClients` instead, built on the same settings.

    Redirects are never followed: an endpoint is the capability the subscriber granted, not a
    place to be sent elsewhere.
    """
    return reqwest_client(ca_file=ca_file, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s)


class PreparedPush(NamedTuple):
    """A message ready to go: encrypted body and headers; sending it is all that is left."""

    endpoint: str
    headers: dict[str, str]
    body: bytes


def prepare(signer: VapidSigner, request: WebPushRequest) -> PreparedPush | Rejected:
    """Check, encrypt and sign one message; what can never be sent comes back as `Rejected`.

    Separate from `transmit` so that a worker can encrypt a window of messages back to back and
    then send them: alternating encryption and HTTP per message cost ≈ 60 µs more per message here
    (each evicts the other's code and data from the CPU caches; bench/http_clients.py).
    """
    try:
        origin = _cached_origin(request.endpoint)
    except ValueError as exc:
        return Rejected(str(exc))
    problem = _request_problem(request)
    if problem is not None:
        return Rejected(problem)
    try:
        body = encrypt(request.payload, request.p256dh, request.auth) if request.payload else b""
    except ValueError as exc:
        return Rejected(f"cannot encrypt for this subscription: {exc}")
    headers = _headers(signer.authorization_for(origin), request, has_body=bool(body))
    return PreparedPush(request.endpoint, headers, body)


async def transmit(client: Client, prepared: PreparedPush) -> Outcome:
    """POST a prepared message (RFC 8030 §5); network trouble is a `Retry`, never an exception."""
    try:
        answer = await post(client, prepared.endpoint, prepared.headers, prepared.body, provider="webpush")
    except BuilderError as exc:
        return Rejected(f"cannot request this endpoint: {exc}")
    except RequestError as exc:
        return Retry(transport_reason(exc))
    return _outcome(answer.status, answer.retry_after, answer.body)


async def transmit_guarded(clients: GuardedClients, prepared: PreparedPush) -> Outcome:
    """`transmit` through the client pinned to the endpoint's judged address; a refused address is
    `Rejected` and a name that does not resolve a `Retry` (guard.GuardedClients.client_or_outcome)."""
    client = await clients.client_or_outcome(prepared.endpoint)
    if isinstance(client, Rejected | Retry):
        return client
    return await transmit(client, prepared)


async def send(client: Client, signer: VapidSigner, request: WebPushRequest) -> Outcome:
    """`prepare` and `transmit` one message."""
    prepared = prepare(signer, request)
    if isinstance(prepared, Rejected):
        return prepared
    return await transmit(client, prepared)


class WebPushProvider:
    """Browsers through their push services: a client per push host, pinned to its judged address
    (guard.GuardedClients), and a VAPID signer per app.

    `prepare` encrypts and signs; the request is left for the sending lanes, so the Deliverer can
    encrypt a window of recipients back to back before it sends any (see `prepare` above).
    """

    def __init__(self, clients: GuardedClients, subject: str, form: WebPushForm = "auto") -> None:
        self._clients = clients
        self._subject = subject
        self._form = form
        # Per app, subject and key: an app whose subject changed gets a new signer (and new tokens), and
        # after a rotation each subscription is signed with the key it was made with.
        self._signers: dict[tuple[int, str, str], VapidSigner] = {}

    def _signer(self, campaign: Campaign, key_id: int | None) -> VapidSigner:
        subject = campaign.vapid_subject or self._subject
        private_pem, public_key = campaign.vapid_key(key_id)
        key = (campaign.app_id, subject, public_key)
        signer = self._signers.get(key)
        if signer is None:
            signer = VapidSigner(private_pem, public_key, subject)
            self._signers[key] = signer
        return signer

    def prepare(self, campaign: Campaign, recipient: Recipient, now: datetime) -> Outcome | Transmit:
        if recipient.p256dh is None or recipient.auth is None:
            return Rejected("the web subscription has no keys")
        ttl_s, topic, own = campaign.remaining_ttl_s(now), campaign.topic, None
        if recipient.params is not None:  # a batch recipient: its own content, TTL and collapse key
            own = campaign.message_for(recipient.params, now)
            ttl_s, topic = own.ttl_s, own.collapse_key
        request = WebPushRequest(
            endpoint=recipient.address,
            p256dh=recipient.p256dh,
            auth=recipient.auth,
            payload=self._payload(campaign, own, recipient.address),
            ttl_s=ttl_s,
            urgency=campaign.urgency,
            topic=topic,
        )
        prepared = prepare(self._signer(campaign, recipient.vapid_key_id), request)
        if isinstance(prepared, Rejected):
            return prepared
        return functools.partial(transmit_guarded, self._clients, prepared)

    def _payload(self, campaign: Campaign, own: Notification | None, endpoint: str) -> bytes:
        """The declarative form where this subscription is sent it and the notification has one that
        fits, else the classic payload that Clarion's service worker (or a site's own) reads."""
        if wants_declarative(self._form, endpoint):
            declarative = campaign.declarative_payload(own)
            # Its member names make it a little longer: one that does not fit goes classic instead.
            if declarative is not None and len(declarative) <= MAX_PLAINTEXT_BYTES:
                return declarative
        return campaign.web_payload(own)

    def rehearse(self, campaign: Campaign, recipient: Recipient, now: datetime) -> Outcome:
        # prepare is the whole message (encrypted, VAPID-signed); only the POST is left.
        prepared = self.prepare(campaign, recipient, now)
        return REHEARSED if callable(prepared) else prepared

    async def close(self) -> None:
        await self._clients.aclose()


def wants_declarative(form: WebPushForm, endpoint: str) -> bool:
    """Whether a subscription at `endpoint` is sent the declarative form under CLARION_WEB_PUSH_FORM."""
    return form == "declarative" or (form == "auto" and endpoint.startswith(APPLE_PUSH_PREFIX))


def _request_problem(request: WebPushRequest) -> str | None:
    if request.ttl_s < 0:
        return f"TTL must not be negative, got {request.ttl_s}"
    if request.urgency is not None and request.urgency not in URGENCIES:
        return f"unknown urgency {request.urgency!r}"
    if len(request.payload) > MAX_PLAINTEXT_BYTES:
        return f"payload is {len(request.payload)} bytes; at most {MAX_PLAINTEXT_BYTES} fit"
    return None


def _headers(authorization: str, request: WebPushRequest, *, has_body: bool) -> dict[str, str]:
    headers = {"TTL": str(request.ttl_s), "Authorization": authorization}
    if has_body:
        headers["Content-Encoding"] = "aes128gcm"
        headers["Content-Type"] = "application/octet-stream"
    if request.urgency is not None:
        headers["Urgency"] = request.urgency
    if request.topic is not None:
        headers["Topic"] = push_topic(request.topic)
    return headers


def push_topic(topic: str) -> str:
    """`topic` if it is a valid Topic header (RFC 8030 §5.4), else a stable 32-character stand-in."""
    if _TOPIC.fullmatch(topic):
        return topic
    # 24 bytes encode to exactly 32 base64url characters with no padding.
    return b64url_encode(hashlib.sha256(topic.encode("utf-8")).digest()[:24])


# The answers almost every message gets, made once (RFC 8030 §5: 201 Created; some services say 200).
_DELIVERED = {200: Delivered(200), 201: Delivered(201)}


def _outcome(status: int, retry_after: str | None, body: bytes) -> Outcome:
    if 200 <= status < 300:
        return _DELIVERED.get(status) or Delivered(status)
    reason = _reason(status, body)
    if status in (404, 410):
        return Gone(reason)
    if status == 429 or 500 <= status < 600:
        return Retry(reason, parse_retry_after(retry_after, datetime.now(UTC)))
    if status in (400, 401, 403) and _VAPID_REFUSED.search(body[: REASON_CHARS * 4]):
        # The app's VAPID identity, not this subscription: Apple answers 403 BadJwtToken to a
        # placeholder subject and 400 VapidPkHashMismatch to a key that is not the subscription's.
        return Rejected(f"channel: {reason}", credentials=True)
    return Rejected(reason)


def _reason(status: int, body: bytes) -> str:
    return http_reason(status, body[: REASON_CHARS * 4].decode("utf-8", "replace"))

"""A local Web Push service speaking the real protocol (RFC 8030, 8291, 8292), for unit and e2e tests.

It is a `tests.fakes.server.AiohttpFake`: aiohttp.web on 127.0.0.1 (a free port) in a thread with its
own event loop, so sync tests, async tests and a server under test in a subprocess can all reach it. It
checks messages on its own, with its own base64 and JWT code, so a fault in clarion's cannot cancel
itself out here.

    with FakePushService() as fake:
        sub = fake.new_subscription()
        fake.script(sub.sub_id, [Respond(429, retry_after="2"), Respond(410)])
        ...  # send to sub.endpoint
        fake.wait_for(1, timeout_s=5)

From async code, wait with `await asyncio.to_thread(fake.wait_for, n, timeout_s)`.
"""

import base64
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.fakes.server import AiohttpFake
from tests.fakes.server import Hang as Hang  # re-exported: tests take it from here

MAX_BODY_BYTES = 4096  # RFC 8030 §7.2: a push service may refuse bigger bodies with 413
MAX_VAPID_LIFETIME_S = 24 * 3600  # RFC 8292 §2


@dataclass(frozen=True, slots=True)
class Respond:
    status: int = 201
    retry_after: str | None = None
    location: str | None = None
    body: str = ""


Response = Respond | Hang


@dataclass(frozen=True, slots=True)
class Received:
    sub_id: str
    payload: bytes
    headers: dict[str, str]  # names lower-cased
    vapid_claims: dict[str, Any]
    at: float = field(default=0.0, compare=False)  # time.time() when it arrived (pacing tests)


@dataclass(frozen=True, slots=True)
class Failure:
    sub_id: str
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    # The client's address tells connections apart (a reused connection keeps its port).
    peer: object = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Subscription:
    sub_id: str
    endpoint: str
    p256dh: str
    auth: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    auth_secret: bytes = field(repr=False)
    application_server_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The browser's PushSubscription.toJSON() shape."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class FakePushService(AiohttpFake[Received, Failure, Request, Respond]):
    """A push service at http://127.0.0.1:PORT/push/<sub_id>; see the module docstring.

    `received` holds the messages answered with 2xx, decrypted; with verify=False (fast mode) nothing
    is checked or kept but the `accepted` count.
    """

    thread_name = "fake-push-service"

    def __init__(self, *, verify: bool = True) -> None:
        self.verify = verify
        self.default: Response = Respond(201)
        self._subs: dict[str, Subscription] = {}
        super().__init__()

    # --- the test's side -------------------------------------------------------------------------

    def new_subscription(self, *, application_server_key: str | None = None) -> Subscription:
        """A subscriber with fresh keys; with `application_server_key`, other VAPID keys get 403."""
        key = ec.generate_private_key(ec.SECP256R1())
        secret = secrets.token_bytes(16)  # RFC 8291 §3.2
        sub_id = uuid.uuid4().hex
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        sub = Subscription(
            sub_id=sub_id,
            endpoint=f"{self.origin}/push/{sub_id}",
            p256dh=_b64url(public),
            auth=_b64url(secret),
            private_key=key,
            auth_secret=secret,
            application_server_key=application_server_key,
        )
        with self._cond:
            self._subs[sub_id] = sub
        return sub

    def received_for(self, sub_id: str) -> list[Received]:
        return [r for r in self.received if r.sub_id == sub_id]

    # --- the server's side (runs on the fake's own loop) -----------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/push/{sub_id}", self._handle_push)

    def _request_of(self, request: web.Request) -> Request:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return Request(request.method, request.path, peer)

    async def _handle_push(self, request: web.Request) -> web.StreamResponse:
        sub_id = request.match_info["sub_id"]
        body = await request.read()
        received = None
        if self.verify:
            try:
                received = self._check(sub_id, request, body)
            except _Refused as refused:
                return self._refuse(sub_id, refused)
        scripted = self._next_scripted(sub_id)
        response = self.default if scripted is None else scripted
        if isinstance(response, Hang):
            return await self._hang()
        if 200 <= response.status < 300:
            self._count_accepted(received)
        return _render(response)

    def _refuse(self, sub_id: str, refused: _Refused) -> web.Response:
        self._record_error(Failure(sub_id, refused.status, refused.reason))
        # The JSON shape Mozilla's autopush uses for its errors.
        body = {"code": refused.status, "message": refused.reason}
        return web.json_response(body, status=refused.status)

    def _check(self, sub_id: str, request: web.Request, body: bytes) -> Received:
        with self._cond:
            sub = self._subs.get(sub_id)
        if sub is None:
            raise _Refused(404, "no such subscription")
        claims = self._check_vapid(request.headers.get("Authorization", ""), sub)
        ttl = request.headers.get("TTL", "")
        if not ttl.isascii() or not ttl.isdigit():
            raise _Refused(400, f"TTL header missing or not a non-negative integer: {ttl!r}")
        if len(body) > MAX_BODY_BYTES:
            raise _Refused(413, f"body is {len(body)} bytes")
        headers = {name.lower(): value for name, value in request.headers.items()}
        return Received(sub_id, _decrypt(body, headers, sub), headers, claims, time.time())

    def _check_vapid(self, authorization: str, sub: Subscription) -> dict[str, Any]:
        scheme, _, params = authorization.partition(" ")
        if scheme.lower() != "vapid":
            raise _Refused(401, "Authorization is not a vapid header")
        fields = dict(part.strip().partition("=")[::2] for part in params.split(","))
        token, key = fields.get("t", ""), fields.get("k", "")
        if sub.application_server_key is not None and key != sub.application_server_key:
            raise _Refused(403, "VAPID key differs from the subscription's applicationServerKey")
        claims = _verify_es256(token, key)
        now = time.time()
        if claims.get("aud") != self.origin:
            raise _Refused(401, f"aud {claims.get('aud')!r} is not {self.origin!r}")
        exp = claims.get("exp")
        if not isinstance(exp, int) or not now < exp <= now + MAX_VAPID_LIFETIME_S:
            raise _Refused(401, f"exp {exp!r} is not in the next 24 hours")
        sub_claim = claims.get("sub")
        if not isinstance(sub_claim, str) or not sub_claim.startswith(("mailto:", "https:")):
            raise _Refused(401, f"sub {sub_claim!r} is not a mailto: or https: URI")
        return claims


def _verify_es256(token: str, key_b64: str) -> dict[str, Any]:
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(_unb64url(header_b64))
        signature = _unb64url(signature_b64)
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64url(key_b64))
    except ValueError as exc:
        raise _Refused(401, f"malformed VAPID token or key: {exc}") from exc
    if header.get("alg") != "ES256" or len(signature) != 64:
        raise _Refused(401, "VAPID token is not ES256 with a 64-byte signature")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        public.verify(der, f"{header_b64}.{claims_b64}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise _Refused(401, "VAPID signature does not verify") from exc
    claims: dict[str, Any] = json.loads(_unb64url(claims_b64))
    return claims


def _decrypt(body: bytes, headers: dict[str, str], sub: Subscription) -> bytes:
    if not body:
        return b""  # RFC 8030 §5: a push message need not carry a payload
    if headers.get("content-encoding") != "aes128gcm":
        raise _Refused(400, f"Content-Encoding {headers.get('content-encoding')!r} is not aes128gcm")
    try:
        payload: bytes = http_ece.decrypt(
            body, private_key=sub.private_key, auth_secret=sub.auth_secret, version="aes128gcm"
        )
    except (http_ece.ECEException, ValueError) as exc:
        raise _Refused(400, f"cannot decrypt: {getattr(exc, 'message', exc)}") from exc
    return payload


def _render(response: Respond) -> web.Response:
    headers = {}
    if response.retry_after is not None:
        headers["Retry-After"] = response.retry_after
    if response.location is not None:
        headers["Location"] = response.location
    elif response.status == 201:
        headers["Location"] = f"/m/{uuid.uuid4().hex}"  # RFC 8030 §5: the push message resource
    return web.Response(status=response.status, text=response.body, headers=headers)

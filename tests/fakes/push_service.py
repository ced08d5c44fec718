"""A local Web Push service speaking the real protocol (RFC 8030, 8291, 8292), for unit and e2e tests.

It runs aiohttp.web on 127.0.0.1 (a free port) in a thread with its own event loop, so sync tests, async
tests and a server under test in a subprocess can all reach it. It checks messages on its own, with
its own base64 and JWT code, so a fault in clarion's cannot cancel itself out here.

    with FakePushService() as fake:
        sub = fake.new_subscription()
        fake.script(sub.sub_id, [Respond(429, retry_after="2"), Respond(410)])
        ...  # send to sub.endpoint
        fake.wait_for(1, timeout_s=5)

From async code, wait with `await asyncio.to_thread(fake.wait_for, n, timeout_s)`.
"""

import asyncio
import base64
import json
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

MAX_BODY_BYTES = 4096  # RFC 8030 §7.2: a push service may refuse bigger bodies with 413
MAX_VAPID_LIFETIME_S = 24 * 3600  # RFC 8292 §2


@dataclass(frozen=True, slots=True)
class Respond:
    status: int = 201
    retry_after: str | None = None
    location: str | None = None
    body: str = ""


@dataclass(frozen=True, slots=True)
class Hang:
    """Never answer; the request is released only when the fake stops."""


Response = Respond | Hang


@dataclass(frozen=True, slots=True)
class Received:
    sub_id: str
    payload: bytes
    headers: dict[str, str]  # names lower-cased
    vapid_claims: dict[str, Any]


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


class FakePushService:
    """A push service at http://127.0.0.1:PORT/push/<sub_id>; see the module docstring."""

    def __init__(self, *, verify: bool = True) -> None:
        self.verify = verify
        self.default: Response = Respond(201)
        self._cond = threading.Condition()
        self._subs: dict[str, Subscription] = {}
        self._scripts: dict[str, deque[Response]] = {}
        self._received: list[Received] = []
        self._errors: list[Failure] = []
        self._requests: list[Request] = []
        self._accepted = 0
        self._stopped = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-push-service", daemon=True)
        self._thread.start()
        self._stopping: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.port: int = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.origin = f"http://127.0.0.1:{self.port}"

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

    def script(self, sub_id: str, responses: Iterable[Response]) -> None:
        """Answer `sub_id`'s next messages with these, in order; then `self.default`."""
        with self._cond:
            self._scripts.setdefault(sub_id, deque()).extend(responses)

    @property
    def received(self) -> list[Received]:
        with self._cond:
            return list(self._received)

    def received_for(self, sub_id: str) -> list[Received]:
        with self._cond:
            return [r for r in self._received if r.sub_id == sub_id]

    @property
    def errors(self) -> list[Failure]:
        with self._cond:
            return list(self._errors)

    @property
    def requests(self) -> list[Request]:
        """Every request that reached the fake, on any path, accepted or not."""
        with self._cond:
            return list(self._requests)

    @property
    def accepted(self) -> int:
        """Messages answered with 2xx (in fast mode nothing else is kept)."""
        with self._cond:
            return self._accepted

    def wait_for(self, count: int, timeout_s: float) -> None:
        """Block until at least `count` messages were accepted; TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._accepted >= count, timeout_s):
                raise TimeoutError(
                    f"{self._accepted} of {count} messages accepted in {timeout_s}s; "
                    f"last errors: {self._errors[-5:]}"
                )

    def stop(self) -> None:
        """Release hanging requests, close the port, end the thread. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> "FakePushService":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- the server's side (runs on the fake's own loop) -----------------------------------------

    async def _start(self) -> int:
        self._stopping = asyncio.Event()
        app = web.Application(middlewares=[self._log_request])
        app.router.add_post("/push/{sub_id}", self._handle_push)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port: int = self._runner.addresses[0][1]
        return port

    async def _shutdown(self) -> None:
        assert self._stopping is not None
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _log_request(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        with self._cond:
            self._requests.append(Request(request.method, request.path, peer))
        return await handler(request)

    async def _handle_push(self, request: web.Request) -> web.StreamResponse:
        sub_id = request.match_info["sub_id"]
        body = await request.read()
        received = None
        if self.verify:
            try:
                received = self._check(sub_id, request, body)
            except _Refused as refused:
                return self._refuse(sub_id, refused)
        response = self._next_response(sub_id)
        if isinstance(response, Hang):
            assert self._stopping is not None
            await self._stopping.wait()
            return web.Response(status=503)
        if 200 <= response.status < 300:
            self._accept(received)
        return _render(response)

    def _refuse(self, sub_id: str, refused: _Refused) -> web.Response:
        with self._cond:
            self._errors.append(Failure(sub_id, refused.status, refused.reason))
        # The JSON shape Mozilla's autopush uses for its errors.
        body = {"code": refused.status, "message": refused.reason}
        return web.json_response(body, status=refused.status)

    def _next_response(self, sub_id: str) -> Response:
        with self._cond:
            queue = self._scripts.get(sub_id)
            return queue.popleft() if queue else self.default

    def _accept(self, received: Received | None) -> None:
        with self._cond:
            self._accepted += 1
            if received is not None:
                self._received.append(received)
            self._cond.notify_all()

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
        return Received(sub_id, _decrypt(body, headers, sub), headers, claims)

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

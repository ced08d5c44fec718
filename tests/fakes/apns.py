"""A local APNs speaking HTTP/2 over TLS with a test CA, for unit and e2e tests.

It is a `tests.fakes.server.FakeServer` with TLS (the test CA's PEM is `ca_file`) serving a small ASGI
app with hypercorn, which speaks HTTP/2 as APNs does. It checks
requests as APNs does (provider JWT, headers, payload), with its own JWT code, and answers with APNs'
status codes and `{"reason": ...}` bodies. A request that is not HTTP/2 is refused and recorded.

    with FakeApns() as fake:
        token = fake.new_token()
        fake.script(token, [Respond(429, reason="TooManyRequests", retry_after="1"), Respond(200)])
        ...  # an ApnsClient(base_url=fake.origin, ca_file=fake.ca_file, key_pem=fake.key_pem, ...)
        fake.wait_for(1, timeout_s=5)

From async code, wait with `await asyncio.to_thread(fake.wait_for, n, timeout_s)`.
"""

import asyncio
import base64
import contextlib
import json
import re
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypercorn.asyncio import serve
from hypercorn.config import Config

from tests.fakes.server import FakeServer
from tests.fakes.server import Hang as Hang  # re-exported: tests take it from here

MAX_PAYLOAD_BYTES = 4096  # Apple: "the maximum payload size is 4 KB" for regular remote notifications
MAX_COLLAPSE_ID_BYTES = 64  # Apple: apns-collapse-id "must not exceed 64 bytes"
MAX_JWT_AGE_S = 3600  # Apple refuses a provider token whose iat is older than one hour
MAX_JWT_FUTURE_S = 60  # some clock skew allowed; a token from further in the future is invalid
PUSH_TYPES = frozenset({"alert", "background"})  # the two Clarion sends; APNs knows more

_PATH = re.compile(r"/3/device/([^/]+)")
_HEX = re.compile(r"[0-9A-Fa-f]+")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Respond:
    status: int = 200
    reason: str | None = None  # the APNs reason string; sent as {"reason": ...} when set
    timestamp: int | None = None  # ms since the epoch, APNs' "last invalid" time for a 410
    retry_after: str | None = None
    location: str | None = None  # for a redirect, which a client must not follow


Response = Respond | Hang


@dataclass(frozen=True, slots=True)
class Received:
    token: str
    headers: dict[str, str]  # names lower-cased, as HTTP/2 sends them
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Failure:
    token: str
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    http_version: str
    # The client's address tells connections apart (streams on one connection share it).
    peer: object = field(default=None, compare=False)


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def new_p8_key() -> tuple[str, str]:
    """A key pair as Apple issues it: (the .p8 file's PKCS8 PEM private key, the PEM public key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private.decode("ascii"), public.decode("ascii")


class FakeApns(FakeServer[Received, Failure, Request, Respond]):
    """APNs at https://127.0.0.1:PORT (`origin`), trusted through `ca_file`; see the module docstring.

    It accepts provider tokens signed by `key_pem` (made here unless `public_key_pem` is given) with
    `kid` = `key_id` and `iss` = `team_id`, for the bundle id `topic`.
    """

    thread_name = "fake-apns"
    accepted_noun = "notifications"

    def __init__(
        self,
        *,
        topic: str = "com.example.app",
        team_id: str = "TEAM123456",
        key_id: str = "KEY1234567",
        public_key_pem: str | None = None,
    ) -> None:
        self.topic = topic
        self.team_id = team_id
        self.key_id = key_id
        self.key_pem: str | None = None
        if public_key_pem is None:
            self.key_pem, public_key_pem = new_p8_key()
        public = serialization.load_pem_public_key(public_key_pem.encode("ascii"))
        assert isinstance(public, ec.EllipticCurvePublicKey)
        self._public_key = public
        self.default: Response = Respond(200)
        self._provider_tokens: list[str] = []
        self._verified: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        super().__init__(tls=True)

    # --- the test's side -------------------------------------------------------------------------

    @staticmethod
    def new_token() -> str:
        """A device token as iOS gives it: 32 random bytes in hex."""
        return secrets.token_hex(32)

    def received_for(self, token: str) -> list[Received]:
        return [r for r in self.received if r.token == token]

    @property
    def provider_tokens(self) -> list[str]:
        """The distinct valid provider JWTs seen, in the order they were first used."""
        with self._cond:
            return list(self._provider_tokens)

    # --- the server's side (runs on the fake's own loop) -----------------------------------------

    async def _serve_on_free_port(self) -> int:
        certificates = self._certificates
        assert certificates is not None
        config, port = _config(*certificates)
        self._serving = asyncio.ensure_future(self._serve(config))
        return port

    async def _close(self) -> None:
        await self._serving

    def _is_teardown_error(self, error: BaseException) -> bool:
        return _is_teardown_error(error)

    async def _serve(self, config: Config) -> None:
        try:
            await serve(self._app, config, shutdown_trigger=self._until_stopped)  # type: ignore[arg-type]
        except Exception as error:
            # hypercorn re-raises the first error of its connections' tasks after it has shut down,
            # e.g. an SSLError when a client wrote after the server's close_notify.
            if not _is_teardown_error(error):
                raise

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        client = scope.get("client")
        # The path as sent: an encoded "/" in a device token must not look like a path separator.
        path = (scope.get("raw_path") or scope["path"].encode("utf-8")).decode("latin-1").partition("?")[0]
        self._record_request(Request(scope["method"], path, scope["http_version"], client))
        match = _PATH.fullmatch(path)
        token = unquote(match.group(1)) if match else ""
        try:
            received = self._check(token, scope, body)
        except _Refused as refused:
            self._record_error(Failure(token, refused.status, refused.reason))
            await _respond(send, Respond(refused.status, reason=refused.reason))
            return
        self._record_received(received)
        scripted = self._next_scripted(token)
        response = self.default if scripted is None else scripted
        if isinstance(response, Hang):
            if not await self._hang(receive):
                return  # the client gave up on the stream: nobody to answer
            response = Respond(503, reason="Shutdown")
        elif response.status == 200:
            self._count_accepted()
        await _respond(send, response)

    async def _hang(self, receive: Receive) -> bool:
        """Wait until the fake stops (True) or the client resets the stream (False)."""
        stopping = asyncio.ensure_future(self._until_stopped())
        disconnect = asyncio.ensure_future(_until_disconnect(receive))
        done, pending = await asyncio.wait({stopping, disconnect}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return stopping in done

    def _check(self, token: str, scope: Scope, body: bytes) -> Received:
        if scope["http_version"] != "2":
            raise _Refused(505, f"HTTP/{scope['http_version']} request; APNs speaks HTTP/2 only")
        if scope["method"] != "POST":
            raise _Refused(405, "MethodNotAllowed")
        if not token:
            raise _Refused(404, "BadPath")
        headers = _headers(scope)
        self._check_provider_token(headers.get("authorization"))
        if not _HEX.fullmatch(token):
            raise _Refused(400, "BadDeviceToken")
        _check_headers(headers, self.topic)
        payload = _check_payload(body, headers["apns-push-type"])
        return Received(token, headers, payload)

    def _check_provider_token(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _Refused(403, "MissingProviderToken")
        with self._cond:
            verified = self._verified.get(token)
        if verified is None:  # APNs, too, checks a signature once, not on every request
            verified = _verify_es256(token, self._public_key)
            with self._cond:
                self._verified[token] = verified
        header, claims = verified
        if header.get("kid") != self.key_id or claims.get("iss") != self.team_id:
            raise _Refused(403, "InvalidProviderToken")
        iat = claims.get("iat")
        if not isinstance(iat, int) or iat > time.time() + MAX_JWT_FUTURE_S:
            raise _Refused(403, "InvalidProviderToken")
        if time.time() - iat > MAX_JWT_AGE_S:
            raise _Refused(403, "ExpiredProviderToken")
        with self._cond:
            if token not in self._provider_tokens:
                self._provider_tokens.append(token)


def _is_teardown_error(error: BaseException) -> bool:
    if isinstance(error, BaseExceptionGroup):
        return all(_is_teardown_error(inner) for inner in error.exceptions)
    if isinstance(error, RuntimeError):
        return "is shutting down" in str(error)  # hypercorn's task group, closing under a stream
    return isinstance(error, OSError | TimeoutError | asyncio.CancelledError)


def _config(certfile: Path, keyfile: Path) -> tuple[Config, int]:
    """hypercorn's configuration for TLS on a socket bound here, and that socket's port."""
    config = Config()
    config.certfile = str(certfile)
    config.keyfile = str(keyfile)
    config.graceful_timeout = 2.0
    config.loglevel = "WARNING"
    config.accesslog = None
    # APNs keeps a connection for as many notifications as it carries; hypercorn closes one
    # after 1000 requests by default, which would fail the streams in flight.
    config.keep_alive_max_requests = 2**62
    # Bind here so the port is known, and listen so clients may connect as soon as this returns;
    # hypercorn takes the socket over through its fd:// binding and closes it when it stops.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port: int = sock.getsockname()[1]
    except BaseException:
        sock.close()
        raise
    config.bind = [f"fd://{sock.detach()}"]
    return config, port


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        if key in headers:
            raise _Refused(400, "DuplicateHeaders")
        headers[key] = value.decode("latin-1")
    return headers


def _check_headers(headers: dict[str, str], topic: str) -> None:
    if "apns-topic" not in headers:
        raise _Refused(400, "MissingTopic")
    if headers["apns-topic"] != topic:
        raise _Refused(400, "TopicDisallowed")
    push_type = headers.get("apns-push-type")
    if push_type not in PUSH_TYPES:
        raise _Refused(400, "InvalidPushType")
    # Apple: background notifications must use priority 5; alerts 10 (immediate) or 5 (power-aware).
    allowed = {"5"} if push_type == "background" else {"5", "10"}
    if headers.get("apns-priority", "10") not in allowed:
        raise _Refused(400, "BadPriority")
    expiration = headers.get("apns-expiration", "0")
    if not expiration.isascii() or not expiration.isdigit():
        raise _Refused(400, "BadExpirationDate")
    collapse_id = headers.get("apns-collapse-id")
    if collapse_id is not None and len(collapse_id.encode("latin-1")) > MAX_COLLAPSE_ID_BYTES:
        raise _Refused(400, "BadCollapseId")


def _check_payload(body: bytes, push_type: str) -> dict[str, Any]:
    if not body:
        raise _Refused(400, "PayloadEmpty")
    if len(body) > MAX_PAYLOAD_BYTES:
        raise _Refused(413, "PayloadTooLarge")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Refused(400, f"BadPayload: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
        raise _Refused(400, "BadPayload: no aps dictionary")
    aps = payload["aps"]
    if push_type == "background":
        # Apple: content-available 1, and no alert, sound or badge, for a background notification.
        if aps.get("content-available") != 1 or aps.keys() & {"alert", "sound", "badge"}:
            raise _Refused(400, "InvalidPushType: background needs content-available only")
    elif not aps.keys() & {"alert", "sound", "badge"}:
        raise _Refused(400, "InvalidPushType: an alert needs alert, sound or badge")
    return payload


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _verify_es256(token: str, public: ec.EllipticCurvePublicKey) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(_unb64url(header_b64))
        claims = json.loads(_unb64url(claims_b64))
        signature = _unb64url(signature_b64)
    except ValueError as exc:
        raise _Refused(403, "InvalidProviderToken") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _Refused(403, "InvalidProviderToken")
    if header.get("alg") != "ES256" or len(signature) != 64:
        raise _Refused(403, "InvalidProviderToken")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        public.verify(der, f"{header_b64}.{claims_b64}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise _Refused(403, "InvalidProviderToken") from exc
    return header, claims


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return bytes(body)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _respond(send: Send, response: Respond) -> None:
    headers = [(b"apns-id", str(uuid.uuid4()).upper().encode("ascii"))]
    body = b""
    if response.reason is not None:
        document: dict[str, Any] = {"reason": response.reason}
        if response.timestamp is not None:
            document["timestamp"] = response.timestamp
        body = json.dumps(document).encode("utf-8")
        headers.append((b"content-type", b"application/json"))
    if response.retry_after is not None:
        headers.append((b"retry-after", response.retry_after.encode("ascii")))
    if response.location is not None:
        headers.append((b"location", response.location.encode("ascii")))
    with contextlib.suppress(OSError):
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

"""What the FCM, WNS and ADM fakes share: an aiohttp server in its own thread, scripts, records, tokens.

Each fake is a real HTTP server on 127.0.0.1 (a free port, `origin`), so sync tests, async tests and a
server under test in a subprocess can all reach it. A fake answers from a per-device script first (then
from the device's state, then success), issues OAuth bearer tokens from its own token endpoint and takes
only those. `errors` lists what its own checks refused (authentication and request shape): a correct
client leaves it empty, except where a test provokes a refusal on purpose.
"""

import asyncio
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Respond:
    status: int = 200
    body: str | dict[str, Any] = ""  # a dict is sent as JSON
    retry_after: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hang:
    """Never answer; the request is released only when the fake stops."""


Response = Respond | Hang


@dataclass(frozen=True, slots=True)
class Failure:
    key: str  # the device (token, channel, registration) or "token-endpoint"
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """One bearer token the fake issued, with what its token request said."""

    access_token: str
    owner: str  # the client id, or the service account's email
    details: dict[str, Any]  # the form without the secret, or the verified JWT claims


@dataclass(frozen=True, slots=True)
class _Issued:
    owner: str
    scope: str
    expires_at: float


class Refused(Exception):
    """A request the fake's own checks refuse: recorded in `errors` and answered with `response`."""

    def __init__(self, response: Respond, reason: str) -> None:
        super().__init__(reason)
        self.response = response
        self.reason = reason


ReceivedT = TypeVar("ReceivedT")

TOKEN_ENDPOINT = "token-endpoint"


class FakeNativeService(Generic[ReceivedT]):
    """The machinery; subclasses add their routes in `_add_routes` and their checks."""

    thread_name = "fake-native-service"

    def __init__(self) -> None:
        self.token_lifetime_s = 3600
        self._cond = threading.Condition()
        self._scripts: dict[str, deque[Response]] = {}
        self._token_script: deque[Respond] = deque()
        self._received: list[ReceivedT] = []
        self._errors: list[Failure] = []
        self._requests: list[Request] = []
        self._grants: list[TokenGrant] = []
        self._issued: dict[str, _Issued] = {}
        self._accepted = 0
        self._stopped = False
        self._stopping: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        self.port: int = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.origin = f"http://127.0.0.1:{self.port}"

    # --- the test's side -------------------------------------------------------------------------

    def script(self, key: str, responses: Iterable[Response]) -> None:
        """Answer the device's next well-formed requests with these, in order; then as usual."""
        with self._cond:
            self._scripts.setdefault(key, deque()).extend(responses)

    def script_token(self, responses: Iterable[Respond]) -> None:
        """Answer the next well-formed token requests with these instead of issuing a token."""
        with self._cond:
            self._token_script.extend(responses)

    def revoke_tokens(self) -> None:
        """Make every bearer token issued so far invalid (401), as a rotated secret would."""
        with self._cond:
            self._issued.clear()

    @property
    def token_grants(self) -> list[TokenGrant]:
        with self._cond:
            return list(self._grants)

    @property
    def received(self) -> list[ReceivedT]:
        """Requests that passed every check, whatever the script then answered."""
        with self._cond:
            return list(self._received)

    @property
    def errors(self) -> list[Failure]:
        """Requests the fake's own checks refused (scripted answers and device states are not errors)."""
        with self._cond:
            return list(self._errors)

    @property
    def requests(self) -> list[Request]:
        """Every request that reached the fake, on any path, accepted or not."""
        with self._cond:
            return list(self._requests)

    @property
    def accepted(self) -> int:
        """Messages answered with 2xx."""
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- for subclasses (run on the fake's own loop) ---------------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _issue_token(self, owner: str, scope: str, details: dict[str, Any]) -> web.Response:
        """The token endpoint's answer: the scripted one, or a new bearer token (RFC 6749 §5.1)."""
        with self._cond:
            scripted = self._token_script.popleft() if self._token_script else None
        if scripted is not None:
            return _render(scripted)
        token = secrets.token_urlsafe(32)
        with self._cond:
            self._issued[token] = _Issued(owner, scope, time.time() + self.token_lifetime_s)
            self._grants.append(TokenGrant(token, owner, details))
        body = {"access_token": token, "token_type": "bearer", "expires_in": self.token_lifetime_s}
        return web.json_response(body | {"scope": scope})

    def _bearer_owner(self, request: web.Request, scope: str, refusal: Callable[[str], Respond]) -> str:
        """The owner of the request's bearer token, which this fake issued for `scope`; else Refused."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Refused(refusal("no bearer token"), "Authorization is not a Bearer token")
        with self._cond:
            issued = self._issued.get(token)
        if issued is None:
            raise Refused(refusal("unknown or revoked token"), "bearer token unknown or revoked")
        if issued.expires_at <= time.time():
            raise Refused(refusal("expired token"), "bearer token expired")
        if issued.scope != scope:
            raise Refused(refusal("wrong scope"), f"bearer token is for scope {issued.scope!r}")
        return issued.owner

    def _refuse(self, key: str, refused: Refused) -> web.Response:
        with self._cond:
            self._errors.append(Failure(key, refused.response.status, refused.reason))
        return _render(refused.response)

    async def _answer(self, key: str, received: ReceivedT, usual: Callable[[], Respond]) -> web.Response:
        """Record a well-formed request, then answer from the script or else with `usual()`."""
        with self._cond:
            self._received.append(received)
            queue = self._scripts.get(key)
            scripted = queue.popleft() if queue else None
        response = usual() if scripted is None else scripted
        if isinstance(response, Hang):
            assert self._stopping is not None
            await self._stopping.wait()
            return web.Response(status=503)
        if 200 <= response.status < 300:
            with self._cond:
                self._accepted += 1
                self._cond.notify_all()
        return _render(response)

    # --- the machinery ---------------------------------------------------------------------------

    async def _start(self) -> int:
        self._stopping = asyncio.Event()
        app = web.Application(middlewares=[self._log_request])
        self._add_routes(app)
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
        with self._cond:
            self._requests.append(Request(request.method, request.path))
        return await handler(request)


def oauth_error(status: int, error: str, description: str) -> Respond:
    """An OAuth 2 token endpoint error (RFC 6749 §5.2)."""
    return Respond(status, {"error": error, "error_description": description})


def _render(response: Respond) -> web.Response:
    headers = dict(response.headers)
    if response.retry_after is not None:
        headers["Retry-After"] = response.retry_after
    if isinstance(response.body, dict):
        return web.Response(
            status=response.status,
            text=json.dumps(response.body),
            headers=headers,
            content_type="application/json",
        )
    return web.Response(status=response.status, text=response.body, headers=headers)


class ClientCredentialsIssuer:
    """The client-credentials grant (RFC 6749 §4.4) as WNS and ADM take it: a form with the secret."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self._clients: dict[str, str] = {}
        self._lock = threading.Lock()

    def new_client(self) -> tuple[str, str]:
        client_id, client_secret = f"client-{secrets.token_hex(8)}", secrets.token_urlsafe(24)
        with self._lock:
            self._clients[client_id] = client_secret
        return client_id, client_secret

    async def check(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        """(client id, the form less the secret) of a well-formed, authenticated request; else Refused."""
        if request.content_type != "application/x-www-form-urlencoded":
            raise Refused(
                oauth_error(400, "invalid_request", "form body expected"),
                f"token request Content-Type is {request.content_type!r}",
            )
        form = {name: str(value) for name, value in (await request.post()).items()}
        if form.get("grant_type") != "client_credentials":
            raise Refused(
                oauth_error(400, "unsupported_grant_type", "client_credentials expected"),
                f"grant_type is {form.get('grant_type')!r}",
            )
        if form.get("scope") != self.scope:
            raise Refused(oauth_error(400, "invalid_scope", "wrong scope"), f"scope is {form.get('scope')!r}")
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        with self._lock:
            known = self._clients.get(client_id)
        if known is None or not secrets.compare_digest(known, secret):
            raise Refused(
                oauth_error(401, "invalid_client", "Client authentication failed"),
                f"client {client_id!r} unknown or its secret is wrong",
            )
        return client_id, {name: value for name, value in form.items() if name != "client_secret"}

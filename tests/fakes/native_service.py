"""What the FCM, WNS and ADM fakes share beyond `tests.fakes.server.AiohttpFake`: OAuth tokens, JSON errors.

Each fake is a real HTTP server on 127.0.0.1 (a free port, `origin`), so sync tests, async tests and a
server under test in a subprocess can all reach it. A fake answers from a per-device script first (then
from the device's state, then success), issues OAuth bearer tokens from its own token endpoint and takes
only those. `errors` lists what its own checks refused (authentication and request shape): a correct
client leaves it empty, except where a test provokes a refusal on purpose.
"""

import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from tests.fakes.server import AiohttpFake
from tests.fakes.server import Hang as Hang  # re-exported: tests take it from here


@dataclass(frozen=True, slots=True)
class Respond:
    status: int = 200
    body: str | dict[str, Any] = ""  # a dict is sent as JSON
    retry_after: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


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


class FakeNativeService(AiohttpFake[ReceivedT, Failure, Request, Respond]):
    """The token machinery on top of the shared fake; subclasses add their routes in `_add_routes`."""

    thread_name = "fake-native-service"

    def __init__(self) -> None:
        self.token_lifetime_s = 3600
        self._token_script: deque[Respond] = deque()
        self._grants: list[TokenGrant] = []
        self._issued: dict[str, _Issued] = {}
        super().__init__()

    # --- the test's side -------------------------------------------------------------------------

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

    # --- for subclasses (run on the fake's own loop) ---------------------------------------------

    def _request_of(self, request: web.Request) -> Request:
        return Request(request.method, request.path)

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
        self._record_error(Failure(key, refused.response.status, refused.reason))
        return _render(refused.response)

    async def _answer(self, key: str, received: ReceivedT, usual: Callable[[], Respond]) -> web.Response:
        """Record a well-formed request, then answer from the script or else with `usual()`."""
        self._record_received(received)
        scripted = self._next_scripted(key)
        response = usual() if scripted is None else scripted
        if isinstance(response, Hang):
            return await self._hang()
        if 200 <= response.status < 300:
            self._count_accepted()
        return _render(response)


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

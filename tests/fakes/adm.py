"""A local Amazon Device Messaging: the token endpoint (`/auth/o2/token`) and the messages endpoint.

The token endpoint takes the client-credentials form (scope messaging:push) of a client made with
`new_client()`; `POST /messaging/registrations/{id}/messages` takes only its bearer tokens and checks
the request as ADM does: the X-Amzn-Type-Version and X-Amzn-Accept-Type headers, a JSON body whose
`data` holds only strings within 6 KB, `consolidationKey` and `expiresAfter` (1 s to 31 days). Errors
are ADM's `{"reason": ...}` bodies. A registration ID the fake never made answers
InvalidRegistrationId; after `unregister(id)` it answers Unregistered.

    with FakeAdm() as fake:
        client_id, client_secret = fake.new_client()
        registration_id = fake.new_registration()
        fake.script(registration_id, [adm_error(503, "ServiceUnavailable", retry_after="4")])
        ...  # AdmClient(session, client_id, client_secret, base_url=fake.origin, timeout=...)
"""

import json
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.native_service import (
    TOKEN_ENDPOINT,
    ClientCredentialsIssuer,
    FakeNativeService,
    Refused,
    Respond,
)

ADM_SCOPE = "messaging:push"
MESSAGE_TYPE = "com.amazon.device.messaging.ADMMessage@1.0"
RESULT_TYPE = "com.amazon.device.messaging.ADMSendResult@1.0"
MAX_DATA_BYTES = 6 * 1024  # ADM: the data payload is at most 6 KB
MAX_EXPIRES_AFTER_S = 31 * 24 * 3600  # ADM: expiresAfter from 1 s to 31 days
MAX_CONSOLIDATION_KEY_CHARS = 64
_BODY_KEYS = frozenset({"data", "notification", "consolidationKey", "expiresAfter", "md5", "priority"})


def adm_error(status: int, reason: str, *, retry_after: str | None = None) -> Respond:
    """ADM's error answer: `{"reason": ...}`."""
    return Respond(status, {"reason": reason}, retry_after)


@dataclass(frozen=True, slots=True)
class AdmReceived:
    registration_id: str
    body: dict[str, Any]
    headers: dict[str, str]  # names lower-cased


class FakeAdm(FakeNativeService[AdmReceived]):
    """ADM at `origin` (give it as base_url); see the module docstring."""

    thread_name = "fake-adm"

    def __init__(self) -> None:
        self._issuer = ClientCredentialsIssuer(ADM_SCOPE)
        self._registrations: set[str] = set()
        self._unregistered: set[str] = set()
        super().__init__()

    # --- the test's side -------------------------------------------------------------------------

    def new_client(self) -> tuple[str, str]:
        """(client_id, client_secret) of a security profile the token endpoint accepts."""
        return self._issuer.new_client()

    def new_registration(self) -> str:
        """A registration ID as a Fire OS device reports it."""
        registration_id = f"amzn1.adm-registration.v3.{secrets.token_urlsafe(96)}"
        with self._cond:
            self._registrations.add(registration_id)
        return registration_id

    def unregister(self, registration_id: str) -> None:
        """The app was uninstalled: from now on the registration answers Unregistered."""
        with self._cond:
            self._unregistered.add(registration_id)

    def received_for(self, registration_id: str) -> list[AdmReceived]:
        return [r for r in self.received if r.registration_id == registration_id]

    # --- the server's side -----------------------------------------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/auth/o2/token", self._handle_token)
        app.router.add_post("/messaging/registrations/{registration_id}/messages", self._handle_send)

    async def _handle_token(self, request: web.Request) -> web.Response:
        try:
            client_id, form = await self._issuer.check(request)
        except Refused as refused:
            return self._refuse(TOKEN_ENDPOINT, refused)
        return self._issue_token(client_id, ADM_SCOPE, form)

    async def _handle_send(self, request: web.Request) -> web.Response:
        registration_id = request.match_info["registration_id"]
        body = await request.read()
        try:
            received = self._check(registration_id, request, body)
        except Refused as refused:
            return self._refuse(registration_id, refused)
        return await self._answer(registration_id, received, lambda: self._usual(registration_id))

    def _check(self, registration_id: str, request: web.Request, body: bytes) -> AdmReceived:
        self._bearer_owner(request, ADM_SCOPE, lambda _why: adm_error(401, "AccessTokenExpired"))
        expected = {
            "X-Amzn-Type-Version": MESSAGE_TYPE,
            "X-Amzn-Accept-Type": RESULT_TYPE,
            "Accept": "application/json",
        }
        for name, value in expected.items():
            if request.headers.get(name) != value:
                raise Refused(adm_error(400, "InvalidType"), f"{name} is {request.headers.get(name)!r}")
        if request.content_type != "application/json":
            raise Refused(adm_error(400, "InvalidData"), f"Content-Type {request.content_type!r}")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise Refused(adm_error(400, "InvalidData"), f"body is not JSON: {exc}") from exc
        _check_body(document)
        headers = {name.lower(): value for name, value in request.headers.items()}
        return AdmReceived(registration_id, document, headers)

    def _usual(self, registration_id: str) -> Respond:
        with self._cond:
            known = registration_id in self._registrations
            unregistered = registration_id in self._unregistered
        if unregistered:
            return adm_error(400, "Unregistered")
        if not known:
            return adm_error(400, "InvalidRegistrationId")
        return Respond(200, {"registrationID": registration_id})


def _check_body(document: object) -> None:
    if not isinstance(document, dict) or set(document) - _BODY_KEYS:
        raise Refused(adm_error(400, "InvalidData"), f"unexpected body: {str(document)[:200]}")
    data = document.get("data")
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise Refused(adm_error(400, "InvalidData"), "data must be an object of strings")
    size = len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_DATA_BYTES:
        raise Refused(adm_error(413, "MessageTooLarge"), f"data is {size} bytes")
    key = document.get("consolidationKey", "")
    if not isinstance(key, str) or len(key) > MAX_CONSOLIDATION_KEY_CHARS:
        raise Refused(adm_error(400, "InvalidConsolidationKey"), f"consolidationKey {key!r}")
    expires = document.get("expiresAfter", 604800)
    if not isinstance(expires, int) or isinstance(expires, bool) or not 1 <= expires <= MAX_EXPIRES_AFTER_S:
        raise Refused(adm_error(400, "InvalidExpiration"), f"expiresAfter {expires!r}")

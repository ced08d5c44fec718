"""A local WNS: the OAuth token endpoint (`{origin}/accesstoken.srf`) and channel URIs on the same server.

The token endpoint takes the client-credentials form (scope notify.windows.com) of a client made with
`new_client()`; a channel made with `new_channel(client_id)` takes only that client's tokens (403
otherwise, as WNS answers a cloud service sending to another app's channel). Requests are checked as
WNS does: X-WNS-Type with its Content-Type, toast XML that parses, X-WNS-TTL, X-WNS-Tag of at most 16
characters and the 5 KB payload limit. Errors carry X-WNS-Error-Description, as WNS's do.

    with FakeWns() as fake:
        client_id, client_secret = fake.new_client()
        channel_uri = fake.new_channel(client_id)  # http://127.0.0.1:PORT/channel/<id>
        fake.script(channel_id_of(channel_uri), [wns_error(406, "throttled", retry_after="2")])
        ...  # WnsClient(session, client_id, client_secret, auth_url=fake.origin, timeout=...)
"""

import json
import secrets
import xml.etree.ElementTree as ET
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

WNS_SCOPE = "notify.windows.com"
MAX_PAYLOAD_BYTES = 5 * 1024  # WNS: a notification payload of more than 5 KB is refused with 413
MAX_TAG_CHARS = 16  # WNS: X-WNS-Tag is at most 16 characters
CONTENT_TYPES = {  # X-WNS-Type → the Content-Type WNS requires with it
    "wns/toast": "text/xml",
    "wns/tile": "text/xml",
    "wns/badge": "text/xml",
    "wns/raw": "application/octet-stream",
}


def wns_error(status: int, description: str = "", *, retry_after: str | None = None) -> Respond:
    """A WNS error answer: an empty body, the reason in X-WNS-Error-Description."""
    headers = {"X-WNS-Error-Description": description} if description else {}
    return Respond(status, "", retry_after, headers)


def channel_id_of(channel_uri: str) -> str:
    return channel_uri.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class WnsReceived:
    channel_id: str
    wns_type: str
    body: bytes
    headers: dict[str, str]  # names lower-cased

    def toast(self) -> ET.Element:
        return ET.fromstring(self.body)  # noqa: S314 - the XML is our own client's, in a test

    def raw_json(self) -> Any:
        return json.loads(self.body)


class FakeWns(FakeNativeService[WnsReceived]):
    """WNS at `origin` (give it as auth_url); see the module docstring."""

    thread_name = "fake-wns"

    def __init__(self) -> None:
        self._issuer = ClientCredentialsIssuer(WNS_SCOPE)
        self._channels: dict[str, str] = {}  # channel id → the client id whose app it belongs to
        self._expired: set[str] = set()
        super().__init__()

    # --- the test's side -------------------------------------------------------------------------

    def new_client(self) -> tuple[str, str]:
        """(client_id, client_secret) the token endpoint accepts: an app's package SID and secret."""
        return self._issuer.new_client()

    def new_channel(self, client_id: str) -> str:
        """A channel URI of `client_id`'s app."""
        channel_id = secrets.token_urlsafe(24)
        with self._cond:
            self._channels[channel_id] = client_id
        return f"{self.origin}/channel/{channel_id}"

    def expire(self, channel_uri: str) -> None:
        """The channel expired: from now on it answers 410."""
        with self._cond:
            self._expired.add(channel_id_of(channel_uri))

    def received_for(self, channel_uri: str) -> list[WnsReceived]:
        channel_id = channel_id_of(channel_uri)
        return [r for r in self.received if r.channel_id == channel_id]

    # --- the server's side -----------------------------------------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/accesstoken.srf", self._handle_token)
        app.router.add_post("/channel/{channel_id}", self._handle_send)

    async def _handle_token(self, request: web.Request) -> web.Response:
        try:
            client_id, form = await self._issuer.check(request)
        except Refused as refused:
            return self._refuse(TOKEN_ENDPOINT, refused)
        return self._issue_token(client_id, WNS_SCOPE, form)

    async def _handle_send(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["channel_id"]
        body = await request.read()
        try:
            received, client_id = self._check(channel_id, request, body)
        except Refused as refused:
            return self._refuse(channel_id, refused)
        return await self._answer(channel_id, received, lambda: self._usual(channel_id, client_id))

    def _check(self, channel_id: str, request: web.Request, body: bytes) -> tuple[WnsReceived, str]:
        client_id = self._bearer_owner(
            request, WNS_SCOPE, lambda why: wns_error(401, f"Invalid token: {why}")
        )
        wns_type = request.headers.get("X-WNS-Type", "")
        expected = CONTENT_TYPES.get(wns_type)
        if expected is None:
            raise Refused(wns_error(400, "Invalid X-WNS-Type"), f"X-WNS-Type {wns_type!r}")
        if request.content_type != expected:
            raise Refused(
                wns_error(400, "Invalid Content-Type"),
                f"Content-Type {request.content_type!r} with {wns_type}",
            )
        ttl = request.headers.get("X-WNS-TTL")
        if ttl is not None and not (ttl.isascii() and ttl.isdigit()):
            raise Refused(wns_error(400, "Invalid X-WNS-TTL"), f"X-WNS-TTL {ttl!r}")
        tag = request.headers.get("X-WNS-Tag")
        if tag is not None and not 0 < len(tag) <= MAX_TAG_CHARS:
            raise Refused(wns_error(400, "Invalid X-WNS-Tag"), f"X-WNS-Tag {tag!r} is over 16 characters")
        if len(body) > MAX_PAYLOAD_BYTES:
            raise Refused(wns_error(413, "Payload too large"), f"payload is {len(body)} bytes")
        if wns_type == "wns/toast":
            _check_toast(body)
        headers = {name.lower(): value for name, value in request.headers.items()}
        return WnsReceived(channel_id, wns_type, body, headers), client_id

    def _usual(self, channel_id: str, client_id: str) -> Respond:
        with self._cond:
            owner = self._channels.get(channel_id)
            expired = channel_id in self._expired
        if owner is None:
            return wns_error(404, "The channel URI is not valid or is not recognized by WNS")
        if expired:
            return wns_error(410, "The channel expired")
        if owner != client_id:
            return wns_error(403, "The cloud service is not authorized to send to this URI")
        return Respond(200, "", None, {"X-WNS-Status": "received", "X-WNS-Msg-ID": secrets.token_hex(8)})


def _check_toast(body: bytes) -> None:
    try:
        toast = ET.fromstring(body)  # noqa: S314 - the XML is our own client's, in a test
    except ET.ParseError as exc:
        raise Refused(wns_error(400, "Invalid XML payload"), f"toast XML does not parse: {exc}") from exc
    if toast.tag != "toast" or toast.find("visual/binding") is None:
        raise Refused(wns_error(400, "Invalid toast payload"), "toast XML lacks <toast><visual><binding>")

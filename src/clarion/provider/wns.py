"""Windows Push Notification Services: a toast (or a raw notification when silent) to a channel URI.

References: learn.microsoft.com, "Push notification service request and response headers" (headers, status
codes, the 5 KB limit), "Authenticate with WNS" (the token) and "Toast content schema" (the XML).
"""

import functools
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pyreqwest.client import Client
from pyreqwest.exceptions import BuilderError, RequestError

from clarion.content import Button, Notification
from clarion.provider.base import ClientPerApp, ClientPerCredential
from clarion.provider.guard import GuardedClients
from clarion.provider.httpio import http_reason, post, transport_reason
from clarion.provider.oauth import TokenCache, Unauthorized, fetch_client_credentials
from clarion.provider.outcome import Delivered, Gone, Outcome, Rejected, Retry, parse_retry_after

WNS_SCOPE = "notify.windows.com"
# 5120 bytes: WNS refuses a bigger notification payload with 413 (request headers reference).
MAX_PAYLOAD_BYTES = 5 * 1024
# 16 characters: the longest X-WNS-Tag WNS takes; a longer collapse key is left out, not cut.
MAX_TAG_CHARS = 16
# 5: the most <action> elements a toast may hold (toast content schema).
MAX_TOAST_ACTIONS = 5

_SOUND_SCHEMES = ("ms-winsoundevent:", "ms-appx:", "ms-appdata:")  # what <audio src> accepts
_ERROR_HEADER = "X-WNS-Error-Description"  # where WNS explains an error
_XML_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class WnsNotification:
    wns_type: str  # wns/toast | wns/raw
    content_type: str
    body: bytes
    ttl_s: int
    tag: str | None = None

    def headers(self, bearer: str) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {bearer}",
            "Content-Type": self.content_type,
            "X-WNS-Type": self.wns_type,
            "X-WNS-TTL": str(self.ttl_s),
        }
        if self.tag is not None:
            headers["X-WNS-Tag"] = self.tag
        return headers


class WnsClient:
    """Sends with one app's WNS credentials (package SID and secret); safe to share between tasks.

    Tokens come from `auth_url` (configuration) through `http`; notifications go to channel URIs,
    which devices hand in, so each goes through `channels`, pinned to its judged address.
    """

    def __init__(
        self,
        http: Client,
        client_id: str,
        client_secret: str,
        *,
        auth_url: str,
        channels: GuardedClients,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        fetch = functools.partial(
            fetch_client_credentials,
            http,
            f"{auth_url.rstrip('/')}/accesstoken.srf",
            client_id=client_id,
            client_secret=client_secret,
            scope=WNS_SCOPE,
        )
        self._tokens = TokenCache(fetch, provider="wns", clock=clock)
        self._channels = channels

    async def send(self, channel_uri: str, message: Notification) -> Outcome:
        """POST one notification to one channel URI; never raises on network or service errors."""
        if urlsplit(channel_uri).scheme not in ("https", "http"):
            return Rejected(f"not an http(s) channel URI: {channel_uri[:100]!r}")
        notification = wns_notification(message)
        if isinstance(notification, Rejected):
            return notification
        if len(notification.body) > MAX_PAYLOAD_BYTES:
            size = len(notification.body)
            return Rejected(f"WNS payload is {size} bytes; at most {MAX_PAYLOAD_BYTES} are allowed")
        client = await self._channels.client_or_outcome(channel_uri)
        if isinstance(client, Rejected | Retry):
            return client
        post_to = functools.partial(self._post, client, channel_uri, notification)
        return await self._tokens.authorized(post_to)

    async def check(self) -> None:
        """Obtain an access token (the credentials' test); raises TokenUnavailable with the reason."""
        await self._tokens.get()

    async def _post(
        self, client: Client, channel_uri: str, notification: WnsNotification, bearer: str
    ) -> Outcome | Unauthorized:
        headers = notification.headers(bearer)
        try:
            answer = await post(
                client, channel_uri, headers, notification.body, read_header=_ERROR_HEADER, provider="wns"
            )
        except BuilderError as exc:
            return Rejected(f"cannot request this channel URI: {exc}")
        except RequestError as exc:
            return Retry(transport_reason(exc))
        # WNS explains its errors in a header; the body is usually empty.
        detail = answer.header or answer.body.decode("utf-8", "replace")
        return wns_outcome(answer.status, answer.retry_after, detail)


class WnsProvider(ClientPerApp[WnsClient]):
    """Windows devices through WNS: a client per app's credentials; one HTTP client for all their
    tokens, and the guarded clients (one per channel host) for all their notifications."""

    def __init__(self, http: Client, *, auth_url: str, channels: GuardedClients) -> None:
        def client(data: dict[str, Any]) -> WnsClient:
            secret = data["client_secret"]
            return WnsClient(http, data["client_id"], secret, auth_url=auth_url, channels=channels)

        super().__init__(http, ClientPerCredential("wns", client))
        self._channels = channels

    async def close(self) -> None:
        await super().close()
        await self._channels.aclose()


def wns_notification(message: Notification) -> WnsNotification | Rejected:
    """A toast, or for a silent message a raw notification carrying JSON for the app."""
    ttl_s = max(message.ttl_s, 0)
    try:
        if message.silent:
            raw = _json(_raw_content(message))
            return WnsNotification("wns/raw", "application/octet-stream", raw.encode("utf-8"), ttl_s)
        if not message.title:
            return Rejected("WNS toast requires a title")
        tag = message.collapse_key
        if tag is not None and len(tag) > MAX_TAG_CHARS:
            tag = None
        return WnsNotification("wns/toast", "text/xml", toast_xml(message).encode("utf-8"), ttl_s, tag)
    except UnicodeEncodeError:
        return Rejected("the message holds text that is not valid Unicode")


def _raw_content(message: Notification) -> dict[str, Any]:
    content: dict[str, Any] = {"campaign_id": message.campaign_id, "message": message.message}
    if message.title is not None:
        content["title"] = message.title
    if message.url is not None:
        content["url"] = message.url
    if message.buttons:
        content["buttons"] = [asdict(button) for button in message.buttons]
    if message.data:
        content["data"] = message.data
    return content


def toast_xml(message: Notification) -> str:
    """ToastGeneric XML; `launch` is JSON with the campaign and the URL, handed to the app on a tap."""
    launch = _launch(message)
    toast = _element(None, "toast", launch=launch)
    binding = _element(_element(toast, "visual"), "binding", template="ToastGeneric")
    _element(binding, "text", message.title)
    _element(binding, "text", message.message)
    if message.subtitle:
        _element(binding, "text", message.subtitle, placement="attribution")
    if message.icon:
        _element(binding, "image", placement="appLogoOverride", src=message.icon)
    image = message.shown_image()
    if image:
        _element(binding, "image", placement="hero", src=image)
    if message.buttons:
        actions = _element(toast, "actions")
        for button in message.buttons[:MAX_TOAST_ACTIONS]:
            _element(actions, "action", **_action(button, launch))
    if message.sound and message.sound.startswith(_SOUND_SCHEMES):
        _element(toast, "audio", src=message.sound)
    return ET.tostring(toast, encoding="unicode")


def _element(parent: ET.Element | None, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    """An element whose text and attributes hold only characters XML 1.0 allows (§2.2).

    ElementTree escapes &, <, > and quotes itself but writes control characters as they are, which
    would make the whole toast unparseable; those are dropped here.
    """
    clean = {name: _XML_FORBIDDEN.sub("", value) for name, value in attributes.items()}
    element = ET.Element(tag, clean) if parent is None else ET.SubElement(parent, tag, clean)
    if text is not None:
        element.text = _XML_FORBIDDEN.sub("", text)
    return element


def _launch(message: Notification) -> str:
    launch: dict[str, Any] = {"campaign_id": message.campaign_id}
    if message.url is not None:
        launch["url"] = message.url
    if message.data:
        launch["data"] = message.data
    return _json(launch)


def _action(button: Button, launch: str) -> dict[str, str]:
    if button.action_type == "dismiss":
        return {"content": button.title, "activationType": "system", "arguments": "dismiss"}
    if button.action_type == "open_url" and button.action:
        return {"content": button.title, "activationType": "protocol", "arguments": button.action}
    return {"content": button.title, "activationType": "foreground", "arguments": launch}


def wns_outcome(status: int, retry_after: str | None, detail: str) -> Outcome | Unauthorized:
    """What a WNS answer means for this channel (request and response headers reference)."""
    if 200 <= status < 300:
        return Delivered(status)
    reason = http_reason(status, detail)
    if status in (401, 403):
        # 401: the token expired or is bad; 403: authenticated, but not for this channel's app.
        return Unauthorized(reason)
    if status in (404, 410):
        return Gone(reason)
    if status in (406, 429) or 500 <= status < 600:
        return Retry(reason, parse_retry_after(retry_after, datetime.now(UTC)))
    return Rejected(reason)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

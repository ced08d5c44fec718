"""Amazon Device Messaging: a data message to one registration ID, with an OAuth client-credentials token.

References: developer.amazon.com, ADM "Send a Message" (the request, its limits and the error reasons)
and "Request an Access Token" (scope messaging:push).
"""

import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pyreqwest.client import Client
from pyreqwest.exceptions import BuilderError, RequestError

from clarion.content import Notification
from clarion.provider.base import ClientPerApp, ClientPerCredential
from clarion.provider.httpio import http_reason, post, transport_reason
from clarion.provider.oauth import TokenCache, Unauthorized, fetch_client_credentials
from clarion.provider.outcome import Delivered, Gone, Outcome, Rejected, Retry, parse_retry_after

ADM_SCOPE = "messaging:push"
# 6144 bytes: ADM's limit on the data payload ("Send a Message": 6 KB), measured on the serialized `data`.
MAX_DATA_BYTES = 6 * 1024
# expiresAfter: 1 s to 31 days ("Send a Message"); a TTL outside is brought inside rather than refused.
MIN_EXPIRES_AFTER_S = 1
MAX_EXPIRES_AFTER_S = 31 * 24 * 3600
# 64 characters: the longest consolidationKey ADM takes; a longer collapse key is sent as its SHA-256.
MAX_CONSOLIDATION_KEY_CHARS = 64

MESSAGE_TYPE = "com.amazon.device.messaging.ADMMessage@1.0"
RESULT_TYPE = "com.amazon.device.messaging.ADMSendResult@1.0"

_GONE_REASONS = frozenset({"Unregistered", "InvalidRegistrationId"})


class AdmClient:
    """Sends with one app's ADM security profile (client ID and secret); safe to share between tasks."""

    def __init__(
        self,
        http: Client,
        client_id: str,
        client_secret: str,
        *,
        base_url: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        fetch = functools.partial(
            fetch_client_credentials,
            http,
            f"{self._base_url}/auth/o2/token",
            client_id=client_id,
            client_secret=client_secret,
            scope=ADM_SCOPE,
        )
        self._tokens = TokenCache(fetch, provider="adm", clock=clock)
        self._http = http

    async def send(self, registration_id: str, message: Notification) -> Outcome:
        """POST one message to one registration ID; never raises on network or service errors."""
        if not registration_id:
            return Rejected("empty ADM registration ID")
        body = adm_message(message)
        try:
            data_size = len(_dumps(body["data"]))
            encoded = _dumps(body)
        except UnicodeEncodeError:
            return Rejected("the message holds text that is not valid Unicode")
        if data_size > MAX_DATA_BYTES:
            return Rejected(f"ADM data is {data_size} bytes; at most {MAX_DATA_BYTES} are allowed")
        url = f"{self._base_url}/messaging/registrations/{quote(registration_id, safe='')}/messages"
        return await self._tokens.authorized(functools.partial(self._post, url, encoded))

    async def check(self) -> None:
        """Obtain an access token (the credentials' test); raises TokenUnavailable with the reason."""
        await self._tokens.get()

    async def _post(self, url: str, body: bytes, bearer: str) -> Outcome | Unauthorized:
        headers = {
            "Authorization": f"Bearer {bearer}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Amzn-Type-Version": MESSAGE_TYPE,
            "X-Amzn-Accept-Type": RESULT_TYPE,
        }
        try:
            answer = await post(self._http, url, headers, body, provider="adm")
        except BuilderError as exc:
            return Rejected(f"channel: cannot request the ADM URL: {exc}")
        except RequestError as exc:
            return Retry(transport_reason(exc))
        return adm_outcome(answer.status, answer.retry_after, answer.body)


class AdmProvider(ClientPerApp[AdmClient]):
    """Fire OS devices through ADM: a client per app's security profile, one HTTP client for all."""

    def __init__(self, http: Client, *, base_url: str) -> None:
        super().__init__(
            http,
            ClientPerCredential(
                "adm",
                lambda data: AdmClient(http, data["client_id"], data["client_secret"], base_url=base_url),
            ),
        )


def adm_message(message: Notification) -> dict[str, Any]:
    """The request body. ADM delivers only data, so the app draws the notification from these keys;
    a silent message carries no title or message, which tells the app not to show one."""
    body: dict[str, Any] = {
        "data": _data(message),
        "expiresAfter": min(max(message.ttl_s, MIN_EXPIRES_AFTER_S), MAX_EXPIRES_AFTER_S),
    }
    key = message.collapse_key
    if key is not None:
        if len(key) > MAX_CONSOLIDATION_KEY_CHARS:
            key = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        body["consolidationKey"] = key
    return body


def _data(message: Notification) -> dict[str, str]:
    # ADM data values must be strings; the app's own keys first, so Clarion's cannot be overridden.
    data = {key: value if isinstance(value, str) else _json(value) for key, value in message.data.items()}
    shown: dict[str, str | None] = {}
    if not message.silent:
        shown = {
            "title": message.title,
            "message": message.message,
            "subtitle": message.subtitle,
            "icon": message.icon,
            "image": message.shown_image(),
            "sound": message.sound,
            # Swrve: on platforms other than iOS the category travels as a plain "category".
            "category": message.category,
        }
        if message.buttons:
            shown["buttons"] = _json([asdict(button) for button in message.buttons])
        if message.rich_media is not None:
            shown["media"] = _json(asdict(message.rich_media))
    own = {"campaign_id": message.campaign_id, "url": message.url, **shown}
    data.update({key: value for key, value in own.items() if value is not None})
    return data


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _dumps(value: object) -> bytes:
    return _json(value).encode("utf-8")


def adm_outcome(status: int, retry_after: str | None, body: bytes) -> Outcome | Unauthorized:
    """What an ADM answer means for this registration ("Send a Message", response codes)."""
    if 200 <= status < 300:
        return Delivered(status)
    reason_code = _reason_code(body)
    reason = http_reason(status, reason_code or body.decode("utf-8", "replace"))
    if status == 401:
        return Unauthorized(reason)
    if status == 400 and reason_code in _GONE_REASONS:
        return Gone(reason)
    if status == 429 or 500 <= status < 600:
        return Retry(reason, parse_retry_after(retry_after, datetime.now(UTC)))
    return Rejected(reason)


def _reason_code(body: bytes) -> str | None:
    try:
        reason = json.loads(body).get("reason")
    except (ValueError, AttributeError):
        return None
    return reason if isinstance(reason, str) else None

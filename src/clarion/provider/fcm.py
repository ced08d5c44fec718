"""Firebase Cloud Messaging, HTTP v1 API: the message, the OAuth 2 service-account token, the errors.

References: firebase.google.com/docs/reference/fcm/rest/v1/projects.messages (the message) and
firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode (what each error means and how to retry).
"""

import asyncio
import functools
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import google.auth.exceptions
import google.auth.transport.requests
import requests
from google.oauth2 import service_account as google_service_account

from clarion.provider.httpio import http_reason, read_body
from clarion.provider.message import NativeMessage
from clarion.provider.oauth import (
    DEFAULT_EXPIRES_IN_S,
    AccessToken,
    TokenCache,
    TokenUnavailable,
    Unauthorized,
)
from clarion.provider.outcome import Delivered, Gone, Outcome, Rejected, Retry, parse_retry_after

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"

# 4096 bytes: FCM's payload limit for notification and data messages alike (Firebase docs, "About FCM
# messages"). Measured on the serialized `message` object without its `token`: that is all FCM counts
# (notification and data) plus the android options, so a message that passes here is never too big there.
MAX_PAYLOAD_BYTES = 4096
# 4 weeks: the longest android.ttl FCM accepts (AndroidConfig.ttl reference); longer is INVALID_ARGUMENT.
MAX_TTL_S = 28 * 24 * 3600
# 60 s: ErrorCode QUOTA_EXCEEDED says to retry with exponential back-off starting at one minute.
QUOTA_RETRY_MIN_S = 60.0
# Used when the client's ClientTimeout has no total; google-auth's own default would be 120 s.
DEFAULT_TOKEN_TIMEOUT_S = 30.0

# AndroidConfig.data / Message.data: keys FCM keeps for itself.
_RESERVED_DATA_KEYS = frozenset({"from", "message_type"})
_RESERVED_DATA_PREFIXES = ("google.", "gcm.")
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_TARGET_FIELD = "message.token"


class FcmClient:
    """Sends to one Firebase project with one service account; safe to share between tasks."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        service_account: dict[str, Any],
        *,
        base_url: str,
        timeout: aiohttp.ClientTimeout,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Raises ValueError when the service-account JSON lacks a project or a usable private key."""
        project_id = service_account.get("project_id")
        if not isinstance(project_id, str) or not project_id:
            raise ValueError("the service-account JSON has no project_id")
        self._credentials = _load_credentials(service_account)
        self._session = session
        self._timeout = timeout
        self._url = f"{base_url.rstrip('/')}/v1/projects/{quote(project_id, safe='')}/messages:send"
        self._tokens = TokenCache(self._fetch_token, clock=clock)

    async def send(self, token: str, message: NativeMessage) -> Outcome:
        """POST one message to one registration token; never raises on network or service errors."""
        body = fcm_message(token, message)
        try:
            problem = _message_problem(body["message"])
            data = _dumps(body)
        except UnicodeEncodeError:
            problem = "the message holds text that is not valid Unicode"
        if problem is not None:
            return Rejected(problem)
        return await self._tokens.authorized(functools.partial(self._post, data))

    async def _post(self, data: bytes, bearer: str) -> Outcome | Unauthorized:
        headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json; charset=utf-8"}
        try:
            async with self._session.post(
                self._url, data=data, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                body = await read_body(response)
                return fcm_outcome(response.status, response.headers.get("Retry-After"), body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return Retry(f"{type(exc).__name__}: {exc}".rstrip(": "))

    async def _fetch_token(self) -> AccessToken:
        try:
            return await asyncio.to_thread(self._refresh_blocking)
        except google.auth.exceptions.TransportError as exc:
            raise TokenUnavailable(Retry(f"token endpoint: {_auth_error_text(exc)}")) from exc
        except google.auth.exceptions.GoogleAuthError as exc:
            reason = f"token endpoint: {_auth_error_text(exc)}"
            raise TokenUnavailable(
                Retry(reason) if exc.retryable else Rejected(f"channel: {reason}")
            ) from exc

    def _refresh_blocking(self) -> AccessToken:
        # google-auth is synchronous: this runs in a worker thread, one at a time (TokenCache's lock).
        timeout_s = self._timeout.total or DEFAULT_TOKEN_TIMEOUT_S
        with requests.Session() as http:
            request = functools.partial(google.auth.transport.requests.Request(http), timeout=timeout_s)
            self._credentials.refresh(request)  # type: ignore[no-untyped-call]
        token, expiry = self._credentials.token, self._credentials.expiry
        if not isinstance(token, str) or not token:
            raise TokenUnavailable(Rejected("channel: token endpoint answered without an access_token"))
        if not isinstance(expiry, datetime):
            return AccessToken(token, DEFAULT_EXPIRES_IN_S)
        # google-auth keeps expiry as a naive UTC datetime.
        return AccessToken(token, (expiry.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds())


def _load_credentials(info: dict[str, Any]) -> google_service_account.Credentials:
    try:
        credentials: google_service_account.Credentials = (
            google_service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=[FCM_SCOPE]
            )
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a usable service-account JSON: {exc}") from exc
    return credentials


def _auth_error_text(exc: Exception) -> str:
    # google-auth puts the response data in args[1]; its first argument is the readable part.
    return str(exc.args[0]) if exc.args else type(exc).__name__


def fcm_message(token: str, message: NativeMessage) -> dict[str, Any]:
    """The v1 request body; silent messages are data-only (no notification) at NORMAL priority."""
    android: dict[str, Any] = {
        "ttl": f"{min(max(message.ttl_s, 0), MAX_TTL_S)}s",
        "priority": "HIGH" if message.high_priority and not message.silent else "NORMAL",
    }
    if message.collapse_key is not None:
        android["collapse_key"] = message.collapse_key
    body: dict[str, Any] = {"token": token}
    if not message.silent:
        body["notification"] = _without_none(
            {"title": message.title, "body": message.message, "image": message.shown_image()}
        )
        shown = _without_none(
            {
                "icon": message.icon,
                "sound": message.sound,
                # click_action is the Android intent action FCM pairs with APNs' category.
                "click_action": message.category,
                "tag": message.collapse_key,
                "notification_count": message.badge,
            }
        )
        if shown:
            android["notification"] = shown
    body["data"] = _data(message)
    body["android"] = android
    return {"message": body}


def _data(message: NativeMessage) -> dict[str, str]:
    # FCM data values must be strings; the app's own keys first, so Clarion's cannot be overridden.
    data = {key: value if isinstance(value, str) else _json(value) for key, value in message.data.items()}
    data["campaign_id"] = message.campaign_id
    if message.url is not None:
        data["url"] = message.url
    if message.buttons:
        data["buttons"] = _json([asdict(button) for button in message.buttons])
    # Android has no notification field for these; the app's SDK reads them from data.
    if message.subtitle is not None:
        data["subtitle"] = message.subtitle
    if message.rich_media is not None:
        data["media"] = _json(asdict(message.rich_media))
    return data


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _message_problem(body: dict[str, Any]) -> str | None:
    if not body["token"]:
        return "empty FCM registration token"
    reserved = sorted(key for key in body["data"] if _is_reserved(key))
    if reserved:
        return f"FCM reserves these data keys: {', '.join(reserved)}"
    counted = {key: value for key, value in body.items() if key != "token"}
    size = len(_dumps(counted))
    if size > MAX_PAYLOAD_BYTES:
        return f"FCM payload is {size} bytes; at most {MAX_PAYLOAD_BYTES} are allowed"
    return None


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _dumps(value: object) -> bytes:
    return _json(value).encode("utf-8")


def _is_reserved(key: str) -> bool:
    return key in _RESERVED_DATA_KEYS or key.startswith(_RESERVED_DATA_PREFIXES)


def fcm_outcome(status: int, retry_after: str | None, body: bytes) -> Outcome | Unauthorized:
    """What an FCM v1 answer means for this token (ErrorCode reference); 401 asks for a new token."""
    if 200 <= status < 300:
        return Delivered(status)
    code, text, names_token = _error_details(body)
    reason = http_reason(status, ": ".join(part for part in (code, text) if part))
    if status == 401:
        return Unauthorized(reason)
    if code in ("UNREGISTERED", "SENDER_ID_MISMATCH"):
        return Gone(reason)
    if code == "INVALID_ARGUMENT":
        # Only a complaint about the token itself condemns it; anything else is this payload's fault.
        return Gone(reason) if names_token else Rejected(reason)
    after_s = parse_retry_after(retry_after, datetime.now(UTC))
    if code == "QUOTA_EXCEEDED" or status == 429:
        return Retry(reason, max(QUOTA_RETRY_MIN_S, after_s or 0.0))
    if code in ("UNAVAILABLE", "INTERNAL") or 500 <= status < 600:
        return Retry(reason, after_s)
    if status in (403, 404):
        # PERMISSION_DENIED or a project that is not there: the app's FCM setup, not this device.
        return Rejected(f"channel: {reason}")
    return Rejected(reason)


def _error_details(body: bytes) -> tuple[str | None, str, bool]:
    """(FcmError errorCode or google.rpc status, message, whether a field violation names the token)."""
    try:
        error = json.loads(body)["error"]
    except (ValueError, TypeError, KeyError):
        return None, body.decode("utf-8", "replace"), False
    if not isinstance(error, dict):
        return None, str(error), False
    details = [item for item in error.get("details") or [] if isinstance(item, dict)]
    codes = [item.get("errorCode") for item in details if item.get("@type") == _FCM_ERROR]
    status = error.get("status")
    code = next((c for c in codes if isinstance(c, str)), status if isinstance(status, str) else None)
    violations = [
        violation
        for item in details
        if item.get("@type") == _BAD_REQUEST
        for violation in item.get("fieldViolations") or []
    ]
    names_token = any(isinstance(v, dict) and v.get("field") == _TARGET_FIELD for v in violations)
    text = error.get("message")
    return code, text if isinstance(text, str) else "", names_token

"""Firebase Cloud Messaging, HTTP v1 API: the message, the OAuth 2 service-account token, the errors.

References: firebase.google.com/docs/reference/fcm/rest/v1/projects.messages (the message) and
firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode (what each error means and how to retry).
"""

import functools
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from google.auth import crypt
from google.auth import jwt as google_jwt
from pyreqwest.client import Client
from pyreqwest.exceptions import BuilderError, RequestError

from clarion.content import Notification
from clarion.provider.base import REHEARSED, ClientPerApp, ClientPerCredential
from clarion.provider.httpio import http_reason, post, transport_reason
from clarion.provider.oauth import (
    AccessToken,
    TokenCache,
    TokenUnavailable,
    Unauthorized,
    access_token,
    oauth_error,
    request_token,
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
# The audience Google's token endpoint expects in a service account's grant assertion, whatever the
# account's token_uri (google-auth sends the same); the assertion lives an hour, the most Google takes.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
ASSERTION_LIFETIME_S = 3600
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# The token endpoint's OAuth errors that mean "try again later" (as google-auth reads them).
_RETRYABLE_OAUTH_ERRORS = frozenset({"internal_failure", "server_error", "temporarily_unavailable"})

# AndroidConfig.data / Message.data: keys FCM keeps for itself.
_RESERVED_DATA_KEYS = frozenset({"from", "message_type"})
_RESERVED_DATA_PREFIXES = ("google.", "gcm.")
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_TARGET_FIELD = "message.token"
# ErrorCode reference: the token is no longer valid (the app was uninstalled, the token expired or
# was never valid for FCM). NOT_FOUND counts only as an FcmError code about the message: a bare
# google.rpc NOT_FOUND is the project's URL, the app's setup (a `channel:` refusal).
_GONE_CODES = frozenset({"UNREGISTERED", "NOT_FOUND"})


class FcmClient:
    """Sends to one Firebase project with one service account; safe to share between tasks."""

    def __init__(
        self,
        http: Client,
        service_account: dict[str, Any],
        *,
        base_url: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Raises ValueError when the service-account JSON lacks a project or a usable private key."""
        project_id = service_account.get("project_id")
        if not isinstance(project_id, str) or not project_id:
            raise ValueError("the service-account JSON has no project_id")
        self._signer, self._email, self._token_url = _load_account(service_account)
        self._http = http
        self._url = f"{base_url.rstrip('/')}/v1/projects/{quote(project_id, safe='')}/messages:send"
        self._tokens = TokenCache(self._fetch_token, provider="fcm", clock=clock)

    async def send(self, token: str, message: Notification) -> Outcome:
        """POST one message to one registration token; never raises on network or service errors."""
        data = self.build(token, message)
        if isinstance(data, Rejected):
            return data
        return await self._tokens.authorized(functools.partial(self._post, data))

    def rehearse(self, token: str, message: Notification) -> Outcome:
        # The OAuth token is the only part left out: fetching it would reach Google.
        built = self.build(token, message)
        return built if isinstance(built, Rejected) else REHEARSED

    def build(self, token: str, message: Notification) -> bytes | Rejected:
        """The request body exactly as sent, or why FCM would refuse it."""
        body = fcm_message(token, message)
        try:
            problem = _message_problem(body["message"])
            data = _dumps(body)
        except UnicodeEncodeError:
            problem = "the message holds text that is not valid Unicode"
        return data if problem is None else Rejected(problem)

    async def check(self) -> None:
        """Obtain an access token (the credentials' test); raises TokenUnavailable with the reason."""
        await self._tokens.get()

    async def _post(self, data: bytes, bearer: str) -> Outcome | Unauthorized:
        headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json; charset=utf-8"}
        try:
            answer = await post(self._http, self._url, headers, data, provider="fcm")
        except BuilderError as exc:
            return Rejected(f"channel: cannot request the FCM URL: {exc}")
        except RequestError as exc:
            return Retry(transport_reason(exc))
        return fcm_outcome(answer.status, answer.retry_after, answer.body)

    async def _fetch_token(self) -> AccessToken:
        """The service-account grant (RFC 7523): google-auth signs the assertion, pyreqwest sends it,
        so no blocking HTTP client runs beside the event loop."""
        form = {"grant_type": JWT_BEARER_GRANT, "assertion": self._assertion()}
        answer = await request_token(self._http, self._token_url, form)
        if answer.status == 200:
            return access_token(answer.body)
        reason = f"token endpoint: {oauth_error(answer.body)}"
        if (
            answer.status == 429
            or answer.status >= 500
            or _oauth_code(answer.body) in _RETRYABLE_OAUTH_ERRORS
        ):
            raise TokenUnavailable(Retry(reason))
        # Google refused the service account's grant (invalid_grant: a deleted or disabled key).
        raise TokenUnavailable(Rejected(f"channel: {reason}", credentials=True))

    def _assertion(self) -> str:
        issued_at = int(time.time())
        claims = {
            "iss": self._email,
            "aud": GOOGLE_TOKEN_AUDIENCE,
            "scope": FCM_SCOPE,
            "iat": issued_at,
            "exp": issued_at + ASSERTION_LIFETIME_S,
        }
        assertion: bytes = google_jwt.encode(self._signer, claims)  # type: ignore[no-untyped-call]
        return assertion.decode("ascii")


class FcmProvider(ClientPerApp[FcmClient]):
    """Android devices through FCM: a client per app's service account, one HTTP client for all."""

    def __init__(self, http: Client, *, base_url: str) -> None:
        super().__init__(
            http, ClientPerCredential("fcm", lambda account: FcmClient(http, account, base_url=base_url))
        )


def _load_account(info: dict[str, Any]) -> tuple[crypt.Signer, str, str]:
    """(the private key's signer, client_email, token_uri) of a service-account JSON."""
    email, token_url = info.get("client_email"), info.get("token_uri")
    if not isinstance(email, str) or not email or not isinstance(token_url, str) or not token_url:
        raise ValueError("not a usable service-account JSON: it needs client_email and token_uri")
    try:
        signer: crypt.Signer = crypt.RSASigner.from_service_account_info(info)  # type: ignore[no-untyped-call]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a usable service-account JSON: {exc}") from exc
    return signer, email, token_url


def _oauth_code(body: bytes) -> object:
    try:
        return json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None


def fcm_message(token: str, message: Notification) -> dict[str, Any]:
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


def _data(message: Notification) -> dict[str, str]:
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
    if code in _GONE_CODES and (code != "NOT_FOUND" or _FCM_ERROR.encode() in body):
        return Gone(reason)
    if code == "INVALID_ARGUMENT":
        # Only a complaint about the token itself condemns it; anything else is this payload's fault.
        return Gone(reason) if names_token else Rejected(reason)
    after_s = parse_retry_after(retry_after, datetime.now(UTC))
    if code == "QUOTA_EXCEEDED" or status == 429:
        return Retry(reason, max(QUOTA_RETRY_MIN_S, after_s or 0.0))
    if code in ("UNAVAILABLE", "INTERNAL") or 500 <= status < 600:
        return Retry(reason, after_s)
    if code == "SENDER_ID_MISMATCH":
        # The token belongs to another Firebase project: permanent for this token, but a wrong service
        # account makes every token answer so, and deactivating them all would lose the audience.
        return Rejected(reason)
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

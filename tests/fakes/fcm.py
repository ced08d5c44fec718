"""A local FCM HTTP v1 service with its own OAuth token endpoint, for unit and e2e tests.

The token endpoint takes the service-account JWT grant (RFC 7523) as Google's does: an RS256 assertion
signed with the service account's key (`kid` = its private_key_id), `iss` = its email, `aud` = Google's
token URL (what google-auth always writes; this fake's own token URL is accepted too), and a `scope`
holding the firebase.messaging scope. It issues bearer tokens, and `messages:send` takes only those,
for the service account's own project. Messages are checked against the v1 reference, with its
4096-byte payload limit, and refusals are Google's error JSON.

    with FakeFcm() as fake:
        account = fake.new_service_account()  # token_uri points at the fake
        token = fake.new_token()
        fake.script(token, [fcm_error("UNAVAILABLE", retry_after="3")])
        ...  # FcmClient(session, account, base_url=fake.origin, timeout=...)

A device token the fake never made answers INVALID_ARGUMENT on message.token, as FCM does; after
`unregister(token)` it answers UNREGISTERED.
"""

import base64
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.native_service import (
    TOKEN_ENDPOINT,
    FakeNativeService,
    Refused,
    Respond,
    oauth_error,
)

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_PAYLOAD_BYTES = 4096  # FCM: "The maximum payload for both message types is 4096 bytes"
MAX_TTL_S = 28 * 24 * 3600  # AndroidConfig.ttl: at most 4 weeks
MAX_ASSERTION_LIFETIME_S = 3600  # Google refuses a grant assertion that lives longer than an hour
CLOCK_SKEW_S = 60

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"

# FcmError errorCode → (HTTP status, google.rpc status), per the FCM v1 ErrorCode reference.
_ERROR_STATUS = {
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT"),
    "UNREGISTERED": (404, "NOT_FOUND"),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED"),
    "UNAVAILABLE": (503, "UNAVAILABLE"),
    "INTERNAL": (500, "INTERNAL"),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED"),
}
_DEFAULT_MESSAGES = {
    "INVALID_ARGUMENT": "Request contains an invalid argument.",
    "UNREGISTERED": "Requested entity was not found.",
    "SENDER_ID_MISMATCH": "SenderId mismatch",
    "QUOTA_EXCEEDED": "Quota exceeded for quota metric 'Send requests'.",
    "UNAVAILABLE": "The service is currently unavailable.",
    "INTERNAL": "Internal error encountered.",
    "THIRD_PARTY_AUTH_ERROR": "Auth error from APNS or Web Push Service",
}

_MESSAGE_KEYS = frozenset(
    {"name", "data", "notification", "android", "webpush", "apns", "fcm_options", "token"}
)
_NOTIFICATION_KEYS = frozenset({"title", "body", "image"})
_ANDROID_KEYS = frozenset(
    {
        "collapse_key",
        "priority",
        "ttl",
        "restricted_package_name",
        "data",
        "notification",
        "fcm_options",
        "direct_boot_ok",
    }
)
_ANDROID_NOTIFICATION_STRINGS = frozenset(
    {
        "title",
        "body",
        "icon",
        "color",
        "sound",
        "tag",
        "click_action",
        "body_loc_key",
        "title_loc_key",
        "channel_id",
        "ticker",
        "image",
        "event_time",
        "notification_priority",
        "visibility",
    }
)
_ANDROID_NOTIFICATION_OTHERS = frozenset(
    {
        "body_loc_args",
        "title_loc_args",
        "sticky",
        "local_only",
        "default_sound",
        "default_vibrate_timings",
        "default_light_settings",
        "vibrate_timings",
        "light_settings",
        "notification_count",
        "bypass_proxy_notification",
        "proxy",
    }
)
_TTL = re.compile(r"(\d+)(\.\d{1,9})?s")

UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential."
)


def google_error(status: int, rpc_status: str, message: str, details: list[dict[str, Any]]) -> Respond:
    """Google's error JSON (google.rpc.Status as the REST APIs render it)."""
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if details:
        error["details"] = details
    return Respond(status, {"error": error})


def fcm_error(
    error_code: str, message: str | None = None, *, field: str | None = None, retry_after: str | None = None
) -> Respond:
    """FCM's answer for an FcmError `error_code`; `field` adds a BadRequest violation on that field."""
    status, rpc_status = _ERROR_STATUS[error_code]
    details: list[dict[str, Any]] = [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}]
    if field is not None:
        violation = {"field": field, "description": message or "Invalid value"}
        details.append({"@type": BAD_REQUEST_TYPE, "fieldViolations": [violation]})
    response = google_error(status, rpc_status, message or _DEFAULT_MESSAGES[error_code], details)
    return Respond(response.status, response.body, retry_after)


def unauthenticated() -> Respond:
    """What FCM says to a missing, expired or revoked access token."""
    return google_error(401, "UNAUTHENTICATED", UNAUTHENTICATED_MESSAGE, [])


@dataclass(frozen=True, slots=True)
class FcmReceived:
    project_id: str
    token: str
    message: dict[str, Any]  # the request's "message" object, as sent
    headers: dict[str, str]  # names lower-cased


@dataclass(frozen=True, slots=True)
class _Account:
    email: str
    key_id: str
    project_id: str
    public_key: rsa.RSAPublicKey


class _Invalid(Exception):
    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


class FakeFcm(FakeNativeService[FcmReceived]):
    """FCM at `origin` (give it as base_url), its token endpoint at `token_url`."""

    thread_name = "fake-fcm"

    def __init__(self) -> None:
        self._accounts: dict[str, _Account] = {}
        self._devices: dict[str, str | None] = {}  # token → the project it belongs to (None: any)
        self._unregistered: set[str] = set()
        super().__init__()
        self.token_url = f"{self.origin}/token"

    # --- the test's side -------------------------------------------------------------------------

    def new_service_account(
        self, project_id: str = "clarion-test", *, trusted: bool = True
    ) -> dict[str, str]:
        """A service-account JSON with a fresh RSA key and `token_uri` at this fake.

        With `trusted=False` the fake does not know the key, so the token endpoint refuses the grant.
        """
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        email = f"sender-{secrets.token_hex(4)}@{project_id}.iam.gserviceaccount.com"
        if trusted:
            with self._cond:
                self._accounts[email] = _Account(email, key_id, project_id, key.public_key())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": key_id,
            "private_key": pem.decode("ascii"),
            "client_email": email,
            "client_id": str(secrets.randbelow(10**21)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_url,
            "universe_domain": "googleapis.com",
        }

    def new_token(self, project_id: str | None = None) -> str:
        """A registration token this fake delivers to; with `project_id`, only that project may send."""
        token = f"{secrets.token_urlsafe(16)}:APA91b{secrets.token_urlsafe(96)}"
        with self._cond:
            self._devices[token] = project_id
        return token

    def unregister(self, token: str) -> None:
        """The app was uninstalled: from now on the token answers UNREGISTERED."""
        with self._cond:
            self._unregistered.add(token)

    def received_for(self, token: str) -> list[FcmReceived]:
        return [r for r in self.received if r.token == token]

    # --- the server's side -----------------------------------------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/token", self._handle_token)
        app.router.add_post("/v1/projects/{project_id}/messages:send", self._handle_send)

    async def _handle_token(self, request: web.Request) -> web.Response:
        try:
            account, claims = await self._check_grant(request)
        except Refused as refused:
            return self._refuse(TOKEN_ENDPOINT, refused)
        return self._issue_token(account.email, FCM_SCOPE, claims)

    async def _check_grant(self, request: web.Request) -> tuple[_Account, dict[str, Any]]:
        form = await request.post() if request.content_type == "application/x-www-form-urlencoded" else {}
        if form.get("grant_type") != JWT_BEARER_GRANT:
            raise Refused(
                oauth_error(400, "unsupported_grant_type", "Invalid grant_type"),
                f"grant_type is {form.get('grant_type')!r} (or the body is not a form)",
            )
        assertion = form.get("assertion")
        account, header, claims = self._verify_assertion(assertion if isinstance(assertion, str) else "")
        if header.get("kid") != account.key_id:
            raise Refused(
                _invalid_grant("Invalid JWT Signature."), f"kid {header.get('kid')!r} is not the key id"
            )
        if claims.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, self.token_url):
            raise Refused(
                _invalid_grant("Invalid JWT: Token must be a short-lived token"),
                f"aud {claims.get('aud')!r} is not the token URL",
            )
        scopes = str(claims.get("scope", "")).split()
        if FCM_SCOPE not in scopes:
            raise Refused(oauth_error(400, "invalid_scope", "Invalid OAuth scope"), f"scope {scopes!r}")
        iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
        if not isinstance(iat, int) or not isinstance(exp, int):
            raise Refused(_invalid_grant("Invalid JWT: iat and exp required"), "iat or exp missing")
        if iat > now + CLOCK_SKEW_S or exp <= now or exp - iat > MAX_ASSERTION_LIFETIME_S:
            raise Refused(
                _invalid_grant("Invalid JWT: Token must be a short-lived token (60 minutes)"),
                f"iat {iat} / exp {exp} not a current assertion of at most an hour",
            )
        return account, claims

    def _verify_assertion(self, assertion: str) -> tuple[_Account, dict[str, Any], dict[str, Any]]:
        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            header = json.loads(_unb64url(header_b64))
            claims = json.loads(_unb64url(claims_b64))
            signature = _unb64url(signature_b64)
        except ValueError as exc:
            raise Refused(_invalid_grant("Invalid JWT"), f"malformed assertion: {exc}") from exc
        if header.get("alg") != "RS256":
            raise Refused(_invalid_grant("Invalid JWT"), f"alg {header.get('alg')!r} is not RS256")
        with self._cond:
            account = self._accounts.get(claims.get("iss"))
        if account is None:
            raise Refused(_invalid_grant("Invalid JWT Signature."), f"iss {claims.get('iss')!r} is unknown")
        try:
            account.public_key.verify(
                signature, f"{header_b64}.{claims_b64}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature as exc:
            raise Refused(
                _invalid_grant("Invalid JWT Signature."), "RS256 signature does not verify"
            ) from exc
        return account, header, claims

    async def _handle_send(self, request: web.Request) -> web.Response:
        project_id = request.match_info["project_id"]
        body = await request.read()
        try:
            received = self._check_send(project_id, request, body)
        except Refused as refused:
            return self._refuse(_token_of(body), refused)
        return await self._answer(received.token, received, lambda: self._usual(received))

    def _check_send(self, project_id: str, request: web.Request, body: bytes) -> FcmReceived:
        owner = self._bearer_owner(request, FCM_SCOPE, lambda _why: unauthenticated())
        with self._cond:
            account = self._accounts[owner]
        if account.project_id != project_id:
            denied = google_error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'cloudmessaging.messages.create' denied on resource "
                f"'//cloudresourcemanager.googleapis.com/projects/{project_id}' (or it may not exist).",
                [],
            )
            raise Refused(denied, f"{owner} may not send for project {project_id!r}")
        if request.content_type != "application/json":
            raise Refused(_bad_request("", "Invalid JSON payload"), f"Content-Type {request.content_type!r}")
        try:
            document = json.loads(body)
            if not isinstance(document, dict) or set(document) - {"message", "validate_only"}:
                raise _Invalid("", 'the body must be {"message": ...}')
            message = _check_message(document.get("message"))
        except (ValueError, _Invalid) as exc:
            field, description = (exc.field, exc.description) if isinstance(exc, _Invalid) else ("", str(exc))
            raise Refused(_bad_request(field, description), f"{field or 'body'}: {description}") from exc
        headers = {name.lower(): value for name, value in request.headers.items()}
        return FcmReceived(project_id, message["token"], message, headers)

    def _usual(self, received: FcmReceived) -> Respond:
        with self._cond:
            unregistered = received.token in self._unregistered
            known = received.token in self._devices
            owner_project = self._devices.get(received.token)
        if unregistered:
            return fcm_error("UNREGISTERED")
        if not known:
            return fcm_error(
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
                field="message.token",
            )
        if owner_project is not None and owner_project != received.project_id:
            return fcm_error("SENDER_ID_MISMATCH")
        return Respond(200, {"name": f"projects/{received.project_id}/messages/{uuid.uuid4().int % 10**19}"})


def _check_message(message: object) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise _Invalid("message", "must be an object")
    unknown = set(message) - _MESSAGE_KEYS
    if unknown:
        raise _Invalid(f"message.{sorted(unknown)[0]}", "Unknown name")
    token = message.get("token")
    if not isinstance(token, str) or not token:
        raise _Invalid("message.token", "this fake sends to a registration token only")
    _check_strings(message.get("notification", {}), "message.notification", _NOTIFICATION_KEYS)
    _check_data(message.get("data", {}), "message.data")
    _check_android(message.get("android", {}))
    counted = {key: value for key, value in message.items() if key != "token"}
    size = len(json.dumps(counted, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        raise _Invalid("message", f"Android message is too big ({size} bytes)")
    return message


def _check_android(android: object) -> None:
    if not isinstance(android, dict):
        raise _Invalid("message.android", "must be an object")
    unknown = set(android) - _ANDROID_KEYS
    if unknown:
        raise _Invalid(f"message.android.{sorted(unknown)[0]}", "Unknown name")
    priority = android.get("priority", "NORMAL")
    if priority not in ("NORMAL", "HIGH"):
        raise _Invalid("message.android.priority", f"Invalid value {priority!r}")
    ttl = android.get("ttl", "0s")
    match = _TTL.fullmatch(ttl) if isinstance(ttl, str) else None
    if match is None or int(match.group(1)) > MAX_TTL_S:
        raise _Invalid("message.android.ttl", f"Invalid duration {ttl!r} (at most 4 weeks)")
    if not isinstance(android.get("collapse_key", ""), str):
        raise _Invalid("message.android.collapse_key", "must be a string")
    _check_data(android.get("data", {}), "message.android.data")
    notification = android.get("notification", {})
    if not isinstance(notification, dict):
        raise _Invalid("message.android.notification", "must be an object")
    others = {key: value for key, value in notification.items() if key in _ANDROID_NOTIFICATION_OTHERS}
    strings = {key: value for key, value in notification.items() if key not in others}
    _check_strings(strings, "message.android.notification", _ANDROID_NOTIFICATION_STRINGS)
    count = notification.get("notification_count", 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise _Invalid("message.android.notification.notification_count", "must be a non-negative integer")


def _check_strings(values: object, path: str, allowed: frozenset[str]) -> None:
    if not isinstance(values, dict):
        raise _Invalid(path, "must be an object")
    for key, value in values.items():
        if key not in allowed:
            raise _Invalid(f"{path}.{key}", "Unknown name")
        if not isinstance(value, str):
            raise _Invalid(f"{path}.{key}", "must be a string")


def _check_data(data: object, path: str) -> None:
    if not isinstance(data, dict):
        raise _Invalid(path, "must be an object")
    for key, value in data.items():
        if not isinstance(value, str):
            raise _Invalid(f"{path}[{key}]", "data values must be strings")
        if key in ("from", "message_type") or key.startswith(("google.", "gcm.")):
            raise _Invalid(f"{path}[{key}]", "Invalid data key: reserved word")


def _bad_request(field: str, description: str) -> Respond:
    return fcm_error("INVALID_ARGUMENT", description, field=field or None)


def _invalid_grant(description: str) -> Respond:
    return oauth_error(400, "invalid_grant", description)


def _token_of(body: bytes) -> str:
    try:
        token = json.loads(body)["message"]["token"]
    except (ValueError, TypeError, KeyError):
        return ""
    return token if isinstance(token, str) else ""


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

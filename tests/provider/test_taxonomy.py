"""The one taxonomy of docs/token-hygiene.md, row by row, through each provider's own answer parser:
gone only on permanent answers, never on a transient one; credentials refused flagged as such."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from clarion.provider import adm, apns, fcm, webpush, wns
from clarion.provider.oauth import AccessToken, TokenCache, Unauthorized
from clarion.provider.outcome import Gone, Outcome, Rejected

TRANSIENT = [429, 500, 502, 503]


def _fcm_body(status: str, code: str | None = None, field: str | None = None) -> bytes:
    details: list[dict[str, object]] = []
    if code is not None:
        details.append({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code})
    if field is not None:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": field}]}
        )
    return json.dumps({"error": {"status": status, "message": "m", "details": details}}).encode()


def _kind(result: Outcome | Unauthorized) -> str:
    if isinstance(result, Rejected):
        return "credentials" if result.credentials else "rejected"
    return type(result).__name__.lower()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, b"", "gone"),
        (410, b"", "gone"),
        (403, b'{"reason":"BadJwtToken"}', "credentials"),
        (400, b'{"reason":"VapidPkHashMismatch"}', "credentials"),
        (400, b'{"reason":"BadWebPushTopic"}', "rejected"),
        (413, b"", "rejected"),
        *[(status, b"", "retry") for status in TRANSIENT],
    ],
)
def test_web_push(status: int, body: bytes, expected: str) -> None:
    assert _kind(webpush._outcome(status, None, body)) == expected


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, _fcm_body("NOT_FOUND", "UNREGISTERED"), "gone"),
        (404, _fcm_body("NOT_FOUND", "NOT_FOUND"), "gone"),
        (404, _fcm_body("NOT_FOUND"), "rejected"),  # no FcmError: the project's URL, not the token
        (400, _fcm_body("INVALID_ARGUMENT", "INVALID_ARGUMENT", "message.token"), "gone"),
        (400, _fcm_body("INVALID_ARGUMENT", "INVALID_ARGUMENT", "message.android.ttl"), "rejected"),
        (403, _fcm_body("PERMISSION_DENIED", "SENDER_ID_MISMATCH"), "rejected"),
        (401, _fcm_body("UNAUTHENTICATED"), "unauthorized"),
        (429, _fcm_body("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), "retry"),
        (503, _fcm_body("UNAVAILABLE", "UNAVAILABLE"), "retry"),
        (500, _fcm_body("INTERNAL", "INTERNAL"), "retry"),
    ],
)
def test_fcm(status: int, body: bytes, expected: str) -> None:
    assert _kind(fcm.fcm_outcome(status, None, body)) == expected


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (410, "Unregistered", "gone"),
        (400, "BadDeviceToken", "gone"),
        (400, "DeviceTokenNotForTopic", "gone"),
        (403, "InvalidProviderToken", "credentials"),
        (403, "BadCertificateEnvironment", "credentials"),
        (403, "TopicDisallowed", "rejected"),
        (400, "PayloadEmpty", "rejected"),
        (429, "TooManyRequests", "retry"),
        (500, "InternalServerError", "retry"),
        (503, "ServiceUnavailable", "retry"),
    ],
)
def test_apns(status: int, reason: str, expected: str) -> None:
    assert _kind(apns.outcome(status, reason)) == expected


def test_apns_410_is_ignored_when_the_device_registered_again_after_apns_timestamp() -> None:
    refused_at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    stamp = int(refused_at.timestamp() * 1000)
    after = apns.outcome(
        410, "Unregistered", timestamp_ms=stamp, token_registered_at=refused_at + timedelta(seconds=1)
    )
    before = apns.outcome(
        410, "Unregistered", timestamp_ms=stamp, token_registered_at=refused_at - timedelta(seconds=1)
    )
    unknown = apns.outcome(410, "Unregistered", timestamp_ms=None, token_registered_at=refused_at)
    assert (after, before, unknown) == (
        Rejected("stale Unregistered"),
        Gone("HTTP 410: Unregistered"),
        Gone("HTTP 410: Unregistered"),
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, "gone"),
        (410, "gone"),
        (401, "unauthorized"),
        (403, "unauthorized"),
        (406, "retry"),
        (400, "rejected"),
    ]
    + [(status, "retry") for status in TRANSIENT],
)
def test_wns(status: int, expected: str) -> None:
    assert _kind(wns.wns_outcome(status, None, "detail")) == expected


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (400, "Unregistered", "gone"),
        (400, "InvalidRegistrationId", "gone"),
        (400, "InvalidData", "rejected"),
        (413, "MessageTooLarge", "rejected"),
        (401, "AccessTokenExpired", "unauthorized"),
        (429, "MaxRateExceeded", "retry"),
        (500, "InternalServerError", "retry"),
        (503, "Unavailable", "retry"),
    ],
)
def test_adm(status: int, reason: str, expected: str) -> None:
    assert _kind(adm.adm_outcome(status, None, json.dumps({"reason": reason}).encode())) == expected


async def test_a_fresh_token_refused_again_is_a_credentials_refusal() -> None:
    async def fetch() -> AccessToken:
        return AccessToken("t", 3600)

    async def post(token: str) -> Outcome | Unauthorized:
        return Unauthorized("HTTP 401")

    result = await TokenCache(fetch, provider="wns").authorized(post)
    assert result == Rejected(
        "channel: credentials refused after a token refresh (HTTP 401)", credentials=True
    )

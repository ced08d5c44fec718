"""Import files as other systems write them, with valid and invalid lines (tests of subscriber.transfer)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def p256dh(n: int) -> str:
    """A valid browser key (an uncompressed P-256 point), the same for the same n."""
    point = ec.derive_private_key(n, ec.SECP256R1()).public_key()
    return b64url(
        point.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )


def auth(n: int) -> str:
    return b64url(n.to_bytes(16, "big"))


def web(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "endpoint": f"https://push.example.net/sub/{n}",
        "p256dh": p256dh(n + 1),
        "auth": auth(n),
        **extra,
    }


def ndjson(*records: Any) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


# An NDJSON file: lines 1, 2, 4 and 9 are valid (9 is line 2's address again, with one more tag).
NDJSON_FILE = ndjson(
    web(1, tags=["news", "Sport"], alias="bob", user_id="u-1"),
    {"platform": "android", "token": "fcm-token-1", "external_user_id": "ext-1", "tags": ["news"]},
    web(2) | {"endpoint": "https://evil.example.com/sub/2"},
    {
        "subscription": {
            "endpoint": "https://push.example.net/sub/3",
            "keys": {"p256dh": p256dh(4), "auth": auth(3)},
        },
        "tags": {"vip": 1, "churned": 0},
    },
    b"not json",
    b"",
    {"token": "no-platform"},
    web(5) | {"p256dh": "abc"},
    {"platform": "android", "token": "fcm-token-1", "tags": ["news", "cars"]},
    web(6, alias="a" * 256),
    web(7, active=False),
    [1, 2],
    web(8, tags=["t" * 256]),
)

NDJSON_REPORT = {
    "lines": 12,
    "created": 3,
    "existing": 1,
    "refused": 8,
    "refusals": [
        {
            "line": 3,
            "field": "endpoint",
            "reason": "endpoint host evil.example.com is not a known push service",
        },
        {"line": 5, "field": "line", "reason": "is not JSON: Expecting value: line 1 column 1 (char 0)"},
        {"line": 7, "field": "platform", "reason": "platform: Field required"},
        {"line": 8, "field": "p256dh", "reason": "p256dh must be an uncompressed P-256 point"},
        {"line": 10, "field": "alias", "reason": "Max alias length is 255!"},
        {"line": 11, "field": "active", "reason": "active: the subscriber is inactive in the source"},
        {"line": 12, "field": "line", "reason": "must be a JSON object"},
        {"line": 13, "field": "tags[0]", "reason": "a tag name is at most 255 characters"},
    ],
    "refusals_left_off": 0,
}

# OneSignal's CSV export (its column names; device_type 5 is Chrome, 1 Android, 0 iOS, 11 email).
ONESIGNAL_CSV = (
    "\ufeffid,identifier,session_count,language,device_type,tags,created_at,invalid_identifier,"
    "web_auth,web_p256,external_user_id\r\n"
    'a1,https://push.example.net/sub/10,3,en,5,"{""news"": ""1""}",2024-01-01,f,'
    f"{auth(10)},{p256dh(11)},user-10\r\n"
    "a2,apns-device-token,1,fr,0,,2024-01-02,f,,,\r\n"
    f"a3,https://push.example.net/sub/12,1,en,5,,2024-01-03,t,{auth(12)},{p256dh(13)},\r\n"
    "a4,someone@example.com,1,en,11,,2024-01-04,f,,,\r\n"
    f"a5,https://push.example.net/sub/14,1,en,5,,2024-01-05,f,short,{p256dh(15)},\r\n"
    'a6,"unterminated,1,en,1,,,f,,,\r\n'
    "a7,too,few\r\n"
).encode()

ONESIGNAL_REPORT = {
    "lines": 7,
    "created": 2,
    "existing": 0,
    "refused": 5,
    "refusals": [
        {
            "line": 4,
            "field": "invalid_identifier",
            "reason": "invalid_identifier: the source marks this subscriber unsubscribed",
        },
        {"line": 5, "field": "device_type", "reason": "device_type 11 is not a platform Clarion serves"},
        {"line": 6, "field": "auth", "reason": "auth is not base64url"},
        {
            "line": 7,
            "field": "line",
            "reason": "is not a CSV record (unexpected end of data); a record must fit on one line",
        },
        {"line": 8, "field": "line", "reason": "has 3 fields where the header names 11"},
    ],
    "refusals_left_off": 0,
}


async def pieces(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    """The file as an upload or a file read gives it: in pieces that cut lines anywhere."""
    for start in range(0, len(data), size):
        yield data[start : start + size]

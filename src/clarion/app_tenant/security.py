"""Secret generation, hashing at rest and constant-time comparison."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from clarion import errors

# App secrets are 128 random bits, so a single SHA-256 is enough to make a leaked table useless:
# there is nothing to brute-force. A slow KDF would only add CPU to every API call.
_DUMMY_HASH = hashlib.sha256(b"clarion-no-such-app").hexdigest()


def new_key() -> str:
    return secrets.token_hex(16)


def new_secret() -> str:
    return secrets.token_hex(16)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def verify_secret(secret: str, stored_hash: str | None) -> bool:
    """Compare in constant time; an unknown key is compared against a dummy so both cost the same."""
    expected = stored_hash if stored_hash is not None else _DUMMY_HASH
    matches = hmac.compare_digest(hash_secret(secret), expected)
    return matches and stored_hash is not None


def basic_credentials(authorization: str) -> tuple[str, str]:
    """(app key, app secret) of an `Authorization: Basic` header; BadCredentials (401) when unusable."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise errors.BadCredentials("HTTP Basic authentication with APP_KEY:APP_SECRET is required")
    try:
        key, sep, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise errors.BadCredentials("The Authorization header is not valid HTTP Basic") from None
    if not sep:
        raise errors.BadCredentials("The Authorization header is not valid HTTP Basic")
    return key, secret

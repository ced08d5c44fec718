"""Secret generation, hashing at rest and constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
import secrets

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

"""Standard Webhooks signatures (https://www.standardwebhooks.com/), made by its maintained library.

An endpoint's secret is `whsec_` and 32 random bytes in base64, as the specification recommends
(24 to 64 bytes). During a rotation the previous secret signs too: the `webhook-signature` header
carries one `v1,…` signature per secret, separated by spaces, and a receiver accepts the request
when any one verifies, so it may switch secrets whenever it likes within the overlap.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the specification's prefix, not a secret
# 32 bytes: the specification's recommended middle of 24 to 64.
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def headers(msg_id: str, at: datetime, body: str, signing_secrets: Sequence[str]) -> dict[str, str]:
    """The three headers of a signed request: id, Unix timestamp and one signature per secret."""
    signatures = [Webhook(secret).sign(msg_id, at, body) for secret in signing_secrets]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
        "Content-Type": "application/json",
    }

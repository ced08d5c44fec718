"""The Providers tab's upload forms, as the credentials `app_tenant.credentials.store` takes (the same
shapes /v1's bodies become): a Firebase service-account file, an APNs .p8 key file with its ids, or a
WNS/ADM client id and secret. The rules themselves are the credentials service's."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from clarion import errors

# What each provider's form asks for, in the order the tab shows them.
TITLES = {
    "fcm": "Firebase Cloud Messaging (Android)",
    "apns": "Apple Push Notification service (iOS)",
    "wns": "Windows Push Notification Services",
    "adm": "Amazon Device Messaging",
}
APNS_ENVIRONMENTS = ("production", "sandbox")
MAX_FILE_BYTES = 64 * 1024  # a service-account JSON or a .p8 key is a few kilobytes


def _text_of(upload: bytes | None, field: str, what: str) -> str:
    if not upload:
        raise errors.InvalidField(f"{field}: choose the {what} file", field=field)
    if len(upload) > MAX_FILE_BYTES:
        raise errors.InvalidField(f"{field}: the {what} file is larger than 64 KiB", field=field)
    try:
        return upload.decode()
    except UnicodeDecodeError:
        raise errors.InvalidField(f"{field}: the {what} file is not text", field=field) from None


def credentials_of(provider: str, form: Mapping[str, str], upload: bytes | None) -> dict[str, Any]:
    """The credentials a provider's form gives (`upload`: the file chosen, if any)."""
    if provider == "fcm":
        try:
            account = json.loads(_text_of(upload, "fcm", "service-account JSON"))
        except json.JSONDecodeError:
            raise errors.InvalidField("fcm: the file is not JSON", field="fcm") from None
        if not isinstance(account, dict):
            raise errors.InvalidField("fcm: the file is not a service-account JSON object", field="fcm")
        return account
    if provider == "apns":
        environment = form.get("environment", "production")
        if environment not in APNS_ENVIRONMENTS:
            raise errors.InvalidField("apns: environment must be production or sandbox", field="apns")
        return {
            "key_pem": _text_of(upload, "apns.key_pem", ".p8 key"),
            **{key: form.get(key, "").strip() for key in ("key_id", "team_id", "topic")},
            "environment": environment,
        }
    return {key: form.get(key, "").strip() for key in ("client_id", "client_secret")}

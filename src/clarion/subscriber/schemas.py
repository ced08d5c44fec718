"""Subscriber API bodies (/sdk/v1/subscribers and /sdk/v1/events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

NATIVE_PLATFORMS = ("android", "ios", "adm", "wns")


class Keys(BaseModel):
    model_config = ConfigDict(strict=True)

    p256dh: str = Field(min_length=1, max_length=128)
    auth: str = Field(min_length=1, max_length=64)


class WebSubscription(BaseModel):
    model_config = ConfigDict(strict=True)

    endpoint: str = Field(min_length=1, max_length=2048)
    keys: Keys


class SubscriberCreate(BaseModel):
    model_config = ConfigDict(strict=True)

    app_key: str = Field(min_length=1, max_length=64)
    platform: Literal["web", "android", "ios", "adm", "wns"]
    subscription: WebSubscription | None = None
    # The app's VAPID public key the browser subscribed with (the Web SDK sends it); absent: the current.
    vapid_public_key: str | None = Field(default=None, min_length=1, max_length=128)
    token: str | None = Field(default=None, min_length=1, max_length=4096)
    user_id: str | None = Field(default=None, min_length=1, max_length=255)
    external_user_id: str | None = Field(default=None, min_length=1, max_length=255)
    # Identity verification: the hex HMAC-SHA256 of the id, keyed with the app's identity key (64 digits).
    user_id_hash: str | None = Field(default=None, max_length=128)
    external_user_id_hash: str | None = Field(default=None, max_length=128)
    # The device's IANA time zone (the Web SDK sends the browser's), for local-time campaigns.
    timezone: str | None = Field(default=None, max_length=64)
    # BCP 47 (the browser's navigator.language, a native SDK's locale): picks a campaign's content
    # language (docs/personalization.md); checked by clarion.attributes.check_language.
    language: str | None = None


def _id_as_text(value: Any) -> Any:
    """A campaign id may come as a JSON number or a string; it is kept as text either way."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class EventCreate(BaseModel):
    model_config = ConfigDict(strict=True)

    app_key: str = Field(min_length=1, max_length=64)
    regId: str = Field(min_length=1, max_length=255)
    # One type (not `str | int`), so that an error names the field and not a union member.
    campaign_id: Annotated[str, BeforeValidator(_id_as_text)]
    type: Literal["received", "clicked", "closed"]


class Registered(BaseModel):
    regId: str


@dataclass(frozen=True)
class SubscriberFilter:
    """Which of an app's subscribers a listing or an export takes; None: any. Ranges are [from, to)."""

    platform: str | None = None
    active: bool | None = None
    tag: str | None = None
    alias: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    seen_from: datetime | None = None
    seen_to: datetime | None = None

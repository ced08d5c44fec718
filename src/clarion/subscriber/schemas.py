"""Subscriber API bodies (CONTRACT.md, "Subscriber API")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
    token: str | None = Field(default=None, min_length=1, max_length=4096)
    user_id: str | None = Field(default=None, min_length=1, max_length=255)
    external_user_id: str | None = Field(default=None, min_length=1, max_length=255)


class EventCreate(BaseModel):
    model_config = ConfigDict(strict=True)

    app_key: str = Field(min_length=1, max_length=64)
    regId: str = Field(min_length=1, max_length=255)
    campaign_id: str | int
    type: Literal["received", "clicked", "closed"]


class Registered(BaseModel):
    regId: str

"""Bodies of the browser-authorised subscriber endpoints (docs/sdk.md)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from clarion.subscriber.schemas import WebSubscription

# One setTags call replaces the set with at most this many tags: it bounds the work of one request
# (each tag is looked up or created), not how many tags a subscriber may collect through addTag.
MAX_TAGS_PER_CALL = 100

# Not length-limited here: a name over 255 symbols gets the v3 API's own error (alias_too_long).
Name = Annotated[str, Field(min_length=1)]


class AliasSet(BaseModel):
    model_config = ConfigDict(strict=True)

    alias: Name


class TagAdd(BaseModel):
    model_config = ConfigDict(strict=True)

    tag: Name


class TagsSet(BaseModel):
    model_config = ConfigDict(strict=True)

    tags: list[Name] = Field(max_length=MAX_TAGS_PER_CALL)


class AttributesChange(BaseModel):
    """Keys to set (strings) or remove (null); the rules are clarion.attributes' (named per key)."""

    model_config = ConfigDict(strict=True)

    attributes: dict[str, Any]


class AttributeMap(BaseModel):
    attributes: dict[str, str]


class Resubscription(BaseModel):
    """The browser's new PushSubscription.toJSON(), after pushsubscriptionchange."""

    model_config = ConfigDict(strict=True)

    subscription: WebSubscription
    # The app's VAPID public key the new subscription was made with; absent: the current one.
    vapid_public_key: str | None = Field(default=None, min_length=1, max_length=128)


class TestNotificationCreate(BaseModel):
    model_config = ConfigDict(strict=True)

    title: str | None = Field(default=None, min_length=1, max_length=100)
    message: str | None = Field(default=None, min_length=1, max_length=500)
    redirect_url: str | None = Field(default=None, min_length=1, max_length=2048)


class SubscriberView(BaseModel):
    """What a browser may know about its own subscription."""

    regId: str
    alias: str | None
    tags: list[str]
    active: bool


class TagList(BaseModel):
    tags: list[str]


class AppInfo(BaseModel):
    app_key: str
    vapid_public_key: str


class TestSent(BaseModel):
    campaign_id: str

"""The `/api/v3` request bodies as the vendor documents them, for the OpenAPI description only.

The handlers read their bodies themselves (`push_body.parse`, `routes._param`), so that every error
keeps the vendor's codes and texts; these models describe the same properties and bounds, so that
generated clients and the API fuzzer know what to send. `push_body` holds the rules.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from clarion.gravitec import push_body


class _Documented(BaseModel):
    # Unknown properties are refused (422 naming them): a misspelled key must not widen a push.
    model_config = ConfigDict(extra="forbid")


class Button(_Documented):
    title: str = Field(min_length=1, max_length=push_body.MAX_BUTTON_TITLE)
    url: str = Field(description="http(s) URL opened on a click")


class Payload(_Documented):
    message: str = Field(min_length=1, max_length=push_body.MAX_TEXT)
    title: str | None = Field(default=None, max_length=push_body.MAX_TEXT)
    icon: str | None = Field(default=None, description="http(s) URL of a .jpg, .jpeg or .png picture")
    image: str | None = Field(default=None, description="http(s) URL of a .jpg, .jpeg or .png picture")
    redirect_url: str = Field(max_length=push_body.MAX_TEXT, description="http(s) URL opened on a click")
    buttons: list[Button] | None = Field(default=None, max_length=2)


class TagTerm(_Documented):
    association: Literal["AND", "AND_NOT", "OR", "OR_NOT"]
    name: str = Field(min_length=1, max_length=push_body.MAX_NAME)


class Audience(_Documented):
    tokens: list[str] | None = Field(default=None, max_length=push_body.MAX_TOKENS, description="regIds")
    aliases: list[str] | None = Field(default=None, max_length=push_body.MAX_TOKENS)
    tags: list[str] | None = Field(default=None, description="subscribers with any of these tags")
    tags_segment: list[TagTerm] | None = Field(default=None, max_length=push_body.MAX_SEGMENT_TERMS)


class PushBody(_Documented):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"payload": {"title": "Hi", "message": "Hello", "redirect_url": "https://example.com/"}}
            ]
        },
    )

    send_date: str | int | None = Field(
        default=None, description='"" or "now" for at once, else a future UNIX time in milliseconds'
    )
    ttl: int | None = Field(default=None, ge=0, le=push_body.MAX_SECONDS)
    push_tag: str | None = Field(default=None, min_length=1, max_length=100)
    display_time: int | None = Field(default=None, ge=0, le=push_body.MAX_SECONDS)
    is_transactional: bool | None = None
    segments: list[str | int] | None = Field(default=None, description="saved segments, by name or id")
    payload: Payload
    audience: Audience | None = None

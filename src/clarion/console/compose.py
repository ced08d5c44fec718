"""The compose form, as the body of `POST /api/v3/push`: the console sends through the same parser and
the same campaign service as the API, so its rules and its messages are the API's.

The form's inputs are named like the API's fields (`payload.title`, `ttl`), and the few that are not
(the audience's) map each API field back to the input it is about.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from clarion import errors
from clarion.campaign import personal
from clarion.campaign.schemas import PLATFORMS, AudienceSpec, CampaignCreate, Content, Personalization
from clarion.campaign.service import chosen_platforms
from clarion.gravitec import push_body

TEXT_FIELDS = ("payload.title", "payload.message", "payload.icon", "payload.image", "payload.redirect_url")
BUTTON_COUNT = 2
AUDIENCES = ("all", "tags", "segment", "aliases")
TAG_MATCHES = ("AND", "OR")
PLATFORM_LABELS = (
    ("web", "Web"),
    ("android", "Android"),
    ("ios", "iOS"),
    ("adm", "Amazon (ADM)"),
    ("wns", "Windows (WNS)"),
)
# The API field an error names (its prefix) -> the console's input it is about.
_INPUT_OF = (
    ("audience.tags_segment", "tags"),
    ("audience.tags", "tags"),
    ("audience.aliases", "aliases"),
    ("segments", "segment"),
    ("audience", "audience"),
)


def _list(text: str) -> list[str]:
    """Names separated by commas or new lines, blanks left out."""
    return [name.strip() for line in text.splitlines() for name in line.split(",") if name.strip()]


def _audience(form: Mapping[str, str]) -> dict[str, Any]:
    kind = form.get("audience", "all")
    if kind == "tags":
        names = _list(form.get("tags", ""))
        if form.get("tag_match") == "AND":
            return {"audience": {"tags_segment": [{"association": "AND", "name": n} for n in names]}}
        return {"audience": {"tags": names}}
    if kind == "segment":
        return {"segments": [form.get("segment", "")]}
    if kind == "aliases":
        return {"audience": {"aliases": _list(form.get("aliases", ""))}}
    if kind != "all":
        raise errors.InvalidField(f"audience must be one of {', '.join(AUDIENCES)}", field="audience")
    return {}


def body(form: Mapping[str, str]) -> dict[str, Any]:
    """The API body the form stands for (an empty input is an absent property)."""
    payload: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        value = form.get(name, "")
        if value:
            payload[name.removeprefix("payload.")] = value
    buttons = []
    for index in range(BUTTON_COUNT):
        title, url = (
            form.get(f"payload.buttons[{index}].title", ""),
            form.get(f"payload.buttons[{index}].url", ""),
        )
        if title or url:
            buttons.append({"title": title, "url": url})
    if buttons:
        payload["buttons"] = buttons
    data: dict[str, Any] = {"payload": payload, **_audience(form)}
    for name in ("ttl", "display_time", "push_tag"):
        if form.get(name):
            data[name] = form[name]
    if form.get("send_date"):
        data["send_date"] = _milliseconds(form["send_date"])
    return data


def _milliseconds(local: str) -> int:
    """A datetime-local input's value, read as UTC, as the API's send_date (UNIX milliseconds)."""
    try:
        when = datetime.fromisoformat(local).replace(tzinfo=UTC)
    except ValueError:
        raise errors.InvalidField("send_date: must be a date and time", field="send_date") from None
    return (when - push_body.EPOCH) // timedelta(milliseconds=1)


def platforms(form: Mapping[str, str]) -> tuple[str, ...] | None:
    """The platforms ticked (each box `platform.NAME`), by /v1's rule; None: every one (all ticked,
    or a form without the boxes)."""
    if not form.get("platforms_shown"):
        return None
    ticked = [platform for platform in PLATFORMS if form.get(f"platform.{platform}")]
    return None if len(ticked) == len(PLATFORMS) else chosen_platforms(ticked)


# The same bounds as /v1's `rate_per_minute` (docs/pacing.md).
MAX_RATE_PER_MINUTE = 1_000_000


def rate_per_minute(form: Mapping[str, str]) -> int | None:
    """The campaign's throttle; empty: none."""
    value = form.get("rate_per_minute", "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_RATE_PER_MINUTE:
        message = f"rate_per_minute must be a whole number from 1 to {MAX_RATE_PER_MINUTE}"
        raise errors.InvalidField(message, field="rate_per_minute")
    return int(value)


def parse(form: Mapping[str, str]) -> CampaignCreate:
    """The campaign; its texts are templates, as /v1's are (docs/personalization.md)."""
    data = body(form)
    urls = personal.template_urls(data["payload"])
    spec = push_body.parse(data)
    return replace(
        spec,
        content=personal.with_urls(spec.content, urls),
        audience=replace(spec.audience, platforms=platforms(form)),
        personalization=Personalization(templates=True),
        rate_per_minute=rate_per_minute(form),
    )


def parse_content(form: Mapping[str, str]) -> Content:
    """The campaign page's update form (the same payload inputs as compose), checked as the API checks
    an update's payload."""
    return push_body.parse_content({"payload": body(form)["payload"]})


def parse_audience(form: Mapping[str, str]) -> AudienceSpec:
    """The form's audience alone (what a recipient count needs), checked as the API checks it."""
    return replace(push_body.parse_audience(_audience(form)), platforms=platforms(form))


def input_of(field: str | None) -> str:
    """The form input an API error's field is about (the error is shown next to it)."""
    field = field or ""
    for prefix, name in _INPUT_OF:
        if field == prefix or field.startswith((f"{prefix}.", f"{prefix}[")):
            return name
    if field.startswith("payload.buttons") and not field.startswith("payload.buttons["):
        return "payload.buttons[0].title"
    return field

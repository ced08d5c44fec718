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
from clarion.campaign import variants as ab
from clarion.campaign.schemas import PLATFORMS, AudienceSpec, CampaignCreate, Content, Personalization
from clarion.campaign.service import chosen_platforms
from clarion.gravitec import push_body

# Rows of per-language content the form offers (a /v1 campaign may carry more: docs/personalization.md).
LANGUAGE_ROWS = 3
LANGUAGE_TEXTS = ("title", "message", "redirect_url")
# Variants the A/B card offers besides the main notification (variant 1): /v1's limit of four in all.
VARIANT_ROWS = ab.MAX_VARIANTS - 1
VARIANT_TEXTS = ("title", "message", "redirect_url")
SECONDS_PER_MINUTE = 60
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


def _languages(form: Mapping[str, str]) -> dict[str, tuple[int, dict[str, str]]]:
    """The filled language rows: BCP 47 tag -> (row, texts as /v1's `languages` gives them)."""
    chosen: dict[str, tuple[int, dict[str, str]]] = {}
    for row in range(LANGUAGE_ROWS):
        name = f"languages[{row}]"
        tag = form.get(f"{name}.tag", "").strip()
        texts = {text: form.get(f"{name}.{text}", "").strip() for text in LANGUAGE_TEXTS}
        if not tag and not any(texts.values()):
            continue
        if not tag:
            raise errors.InvalidField(f"{name}.tag: a language's texts need its tag", field=f"{name}.tag")
        if not texts["message"]:
            field = f"{name}.message"
            raise errors.InvalidField(f"{field}: a language needs its message", field=field)
        for text in ("title", "message"):
            if len(texts[text]) > personal.MAX_TEXT_CHARS:
                field = f"{name}.{text}"
                raise errors.InvalidField(
                    f"{field}: at most {personal.MAX_TEXT_CHARS} characters", field=field
                )
        if tag in chosen:  # (a tag spelled otherwise: `personal.personalization` refuses it)
            field = f"{name}.tag"
            raise errors.InvalidField(f"languages.{tag}: this language is given twice", field=field)
        chosen[tag] = (row, {text: value for text, value in texts.items() if value})
    return chosen


def _personalization(form: Mapping[str, str], shown: Content) -> Personalization:
    """Templates, and the content per language by /v1's rules; an error names the row's input."""
    rows = _languages(form)
    default_language = form.get("default_language", "").strip() or None
    try:
        return personal.personalization(
            shown, default_language, {tag: texts for tag, (_, texts) in rows.items()}
        )
    except errors.InvalidField as invalid:
        for tag, (row, _) in rows.items():
            prefix = f"languages.{tag}"
            if invalid.field == prefix or (invalid.field or "").startswith(f"{prefix}."):
                rest = (invalid.field or "").removeprefix(prefix)
                field = f"languages[{row}]{rest or '.tag'}"
                raise errors.InvalidField(invalid.message, field=field) from None
        raise


def _number(value: str) -> int | str | None:
    """A whole number typed into the form as the API's integer; anything else as typed, for the
    API's rule to refuse by name; empty: absent."""
    value = value.strip()
    if not value:
        return None
    return int(value) if value.isascii() and value.isdigit() else value


def _variant(row: int, texts: dict[str, str]) -> Content:
    """Variant `row + 1`'s content by the push body's payload rules; an error names its input."""
    payload = {text: value for text, value in texts.items() if value}
    try:
        return push_body.parse_content({"payload": payload})
    except errors.InvalidField as invalid:
        field = (invalid.field or "payload").replace("payload", f"ab_test.variants[{row}]", 1)
        message = invalid.message.replace(invalid.field or "payload", field, 1)
        raise errors.InvalidField(message, field=field) from None


def _ab_test(form: Mapping[str, str], main: Content, ttl_s: int) -> ab.AbTest | None:
    """The A/B card: the main notification is variant 1; None when no other variant is filled."""
    rows = []
    for row in range(1, VARIANT_ROWS + 1):
        name = f"ab_test.variants[{row}]"
        texts = {text: form.get(f"{name}.{text}", "").strip() for text in VARIANT_TEXTS}
        percent = form.get(f"{name}.percent", "")
        if percent.strip() or any(texts.values()):
            rows.append((row, _number(percent), texts))
    if not rows:
        return None
    minutes = _number(form.get("ab_test.winner_after_minutes", ""))
    if isinstance(minutes, str):
        field = "ab_test.winner_after_minutes"
        raise errors.InvalidField(f"{field}: must be whole minutes", field=field)
    holdout = _number(form.get("ab_test.holdout_percent", ""))
    given: dict[str, Any] = {
        "variants": [
            {"percent": _number(form.get("ab_test.variants[0].percent", ""))},
            *({"percent": percent} for _, percent, _ in rows),
        ],
        **({} if holdout is None else {"holdout_percent": holdout}),
        **({} if minutes is None else {"winner_after": minutes * SECONDS_PER_MINUTE}),
    }
    contents = (main, *(_variant(row, texts) for row, _, texts in rows))  # as /v1: contents first
    split, _, winner_after = ab.parse(given, ttl_s)
    return ab.AbTest(split, contents, winner_after)


def parse(form: Mapping[str, str]) -> CampaignCreate:
    """The campaign; its texts are templates and it may carry content per language, as /v1's
    (docs/personalization.md)."""
    data = body(form)
    urls = personal.template_urls(data["payload"])
    spec = push_body.parse(data)
    shown = personal.with_urls(spec.content, urls)
    return replace(
        spec,
        content=shown,
        audience=replace(spec.audience, platforms=platforms(form)),
        personalization=_personalization(form, shown),
        rate_per_minute=rate_per_minute(form),
        ab_test=_ab_test(form, shown, spec.ttl_s),
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
    if field in ("ab_test", "ab_test.variants"):
        return "ab_test"  # the A/B card as a whole
    if field == "ab_test.winner_after":
        return "ab_test.winner_after_minutes"
    for prefix, name in _INPUT_OF:
        if field == prefix or field.startswith((f"{prefix}.", f"{prefix}[")):
            return name
    if field.startswith("payload.buttons") and not field.startswith("payload.buttons["):
        return "payload.buttons[0].title"
    return field

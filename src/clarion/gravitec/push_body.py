"""`POST /api/v3/push` bodies: every rule of the Gravitec v3 document, checked in order.

Each broken rule raises InvalidField naming the field (rendered as the vendor's 422 body).
"""

from __future__ import annotations

import difflib
from datetime import UTC, datetime, timedelta
from typing import Any

from clarion import errors
from clarion.campaign.schemas import (
    ASSOCIATIONS,
    AudienceKind,
    AudienceSpec,
    Button,
    CampaignCreate,
    Content,
    SegmentTerm,
)
from clarion.db import utcnow
from clarion.validation import MAX_ID_DIGITS, clickable_url_problem, http_url_problem

MAX_SECONDS = 2_419_200  # 28 days: the v3 ceiling for ttl and display_time
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Python's datetime ends with the year 9999, about 2.5e14 ms after the epoch: 15 digits.
MAX_MS_DIGITS = 15
DEFAULT_TTL_S = 28_800
DEFAULT_DISPLAY_TIME_S = 60
MAX_TEXT = 1000
MAX_BUTTON_TITLE = 48
MAX_TOKENS = 100
MAX_SEGMENT_TERMS = 256
MAX_NAME = 255


# Every property the vendor documents for `POST /api/v3/push`, at each level. Anything else is refused:
# a misspelled key (say "segmnets") must not silently widen a push to every subscriber.
TOP_LEVEL = (
    "send_date",
    "ttl",
    "push_tag",
    "display_time",
    "is_transactional",
    "segments",
    "payload",
    "audience",
)
PAYLOAD = ("message", "title", "icon", "image", "redirect_url", "buttons")
BUTTON = ("title", "url")
AUDIENCE = ("tokens", "aliases", "tags", "tags_segment")
TERM = ("association", "name")


def _invalid(field: str, why: str) -> errors.InvalidField:
    return errors.InvalidField(f"{field}: {why}", field=field)


def _known_keys(data: dict[str, Any], known: tuple[str, ...], prefix: str = "") -> None:
    """Refuse the first property the vendor does not document, naming it and the closest known one."""
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise _invalid(f"{prefix}{key}", f"is not a known property{hint}")


def _absent(data: dict[str, Any], key: str) -> bool:
    return data.get(key) is None


def _integer(data: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    if _absent(data, key):
        return default
    value = data[key]
    if isinstance(value, str):  # the vendor's examples quote numbers
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            raise _invalid(key, "must be an integer")
        if len(text) > MAX_ID_DIGITS:
            raise _invalid(key, f"must be between {low} and {high}")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(key, "must be an integer")
    if not low <= value <= high:
        raise _invalid(key, f"must be between {low} and {high}")
    return value


def _send_at(data: dict[str, Any]) -> datetime | None:
    value = data.get("send_date")
    if value is None or value == "" or value == "now":
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        if len(value) > MAX_MS_DIGITS:
            raise _invalid("send_date", "is not a representable time")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid("send_date", 'must be "", "now" or a UNIX time in milliseconds')
    try:
        when = EPOCH + timedelta(milliseconds=value)  # exact: no float rounding of the milliseconds
    except OverflowError:
        raise _invalid("send_date", "is not a representable time") from None
    if when <= utcnow():
        raise _invalid("send_date", "must be in the future")
    return when


def _text(data: dict[str, Any], key: str, field: str, *, limit: int, required: bool) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise _invalid(field, "is required")
        return None
    if not isinstance(value, str):
        raise _invalid(field, "must be a string")
    if required and not value:
        raise _invalid(field, "must not be empty")
    if len(value) > limit:
        raise _invalid(field, f"must be at most {limit} characters")
    return value


def _url(value: str, field: str, *, images_only: bool = False) -> str:
    """redirect_url, icon and image: the clickable-URL rule (validation.py), and http(s) only."""
    problem = http_url_problem(value, images_only=images_only)
    if problem is not None:
        raise _invalid(field, problem)
    return value


def _clickable(value: str, field: str) -> str:
    """A button's url: the clickable-URL rule (validation.py), any safe scheme (mailto:, app links)."""
    problem = clickable_url_problem(value)
    if problem is not None:
        raise _invalid(field, problem)
    return value


def _buttons(value: Any) -> tuple[Button, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not 1 <= len(value) <= 2:
        raise _invalid("payload.buttons", "must be an array of one or two buttons")
    buttons: list[Button] = []
    for index, item in enumerate(value):
        field = f"payload.buttons[{index}]"
        if not isinstance(item, dict):
            raise _invalid(field, "must be an object")
        _known_keys(item, BUTTON, f"{field}.")
        title = _text(item, "title", f"{field}.title", limit=MAX_BUTTON_TITLE, required=True)
        url = _text(item, "url", f"{field}.url", limit=MAX_TEXT, required=True)
        assert title is not None
        assert url is not None
        buttons.append(Button(title, _clickable(url, f"{field}.url")))
    return tuple(buttons)


def _content(data: dict[str, Any]) -> Content:
    body = data.get("payload")
    if body is None:
        raise _invalid("payload", "is required")
    if not isinstance(body, dict):
        raise _invalid("payload", "must be an object")
    _known_keys(body, PAYLOAD, "payload.")
    message = _text(body, "message", "payload.message", limit=MAX_TEXT, required=True)
    title = _text(body, "title", "payload.title", limit=MAX_TEXT, required=False)
    icon = _text(body, "icon", "payload.icon", limit=MAX_TEXT, required=False)
    image = _text(body, "image", "payload.image", limit=MAX_TEXT, required=False)
    redirect = _text(body, "redirect_url", "payload.redirect_url", limit=MAX_TEXT, required=True)
    assert message is not None
    assert redirect is not None
    return Content(
        message=message,
        title=title or "Title",
        redirect_url=_url(redirect, "payload.redirect_url"),
        icon=_url(icon, "payload.icon", images_only=True) if icon is not None else None,
        image=_url(image, "payload.image", images_only=True) if image is not None else None,
        buttons=_buttons(body.get("buttons")),
    )


def parse_content(data: dict[str, Any]) -> Content:
    """Only a body's `payload`, under the same rules (an update of a sent campaign's content)."""
    _known_keys(data, ("payload",))
    return _content(data)


def _names(value: Any, field: str, *, limit: int | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _invalid(field, "must be a non-empty array")
    if limit is not None and len(value) > limit:
        raise _invalid(field, f"must hold at most {limit} entries")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not 1 <= len(item) <= MAX_NAME:
            raise _invalid(f"{field}[{index}]", f"must be a string of 1-{MAX_NAME} characters")
    return tuple(value)


def parse_terms(value: Any, field: str) -> tuple[SegmentTerm, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_SEGMENT_TERMS:
        raise _invalid(field, f"must be an array of 1-{MAX_SEGMENT_TERMS} entries")
    terms: list[SegmentTerm] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        at = f"{field}[{index}]"
        if not isinstance(item, dict):
            raise _invalid(at, "must be an object with association and name")
        _known_keys(item, TERM, f"{at}.")
        association = item.get("association")
        if association not in ASSOCIATIONS:
            raise _invalid(f"{at}.association", f"must be one of {', '.join(ASSOCIATIONS)}")
        name = item.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
            raise _invalid(f"{at}.name", f"must be a string of 1-{MAX_NAME} characters")
        if name.casefold() in seen:
            raise _invalid(f"{at}.name", "must be unique (case-insensitive) in tags_segment")
        seen.add(name.casefold())
        terms.append(SegmentTerm(association, name))
    return tuple(terms)


_AUDIENCE_KEYS: tuple[AudienceKind, ...] = ("tokens", "aliases", "tags", "tags_segment")


def parse_audience(data: dict[str, Any]) -> AudienceSpec:
    """`segments` or `audience` of a push body (or of /v1's dry run): the audience to resolve."""
    segments, audience = data.get("segments"), data.get("audience")
    if segments is not None and audience is not None:
        raise _invalid("segments", "cannot be sent together with audience")
    if segments is not None:
        if not isinstance(segments, list) or len(segments) != 1:
            raise _invalid("segments", "must name exactly one segment")
        segment = segments[0]
        if isinstance(segment, bool) or not isinstance(segment, str | int) or str(segment) == "":
            raise _invalid("segments[0]", "must be a segment name or id")
        return AudienceSpec(segment=segment)
    if audience is None:
        return AudienceSpec()
    if not isinstance(audience, dict):
        raise _invalid("audience", "must be an object")
    _known_keys(audience, AUDIENCE, "audience.")
    present = [key for key in _AUDIENCE_KEYS if audience.get(key) is not None]
    if len(present) != 1:
        raise _invalid("audience", "must contain exactly one of tokens, aliases, tags, tags_segment")
    kind = present[0]
    field = f"audience.{kind}"
    if kind == "tags_segment":
        return AudienceSpec(kind=kind, terms=parse_terms(audience[kind], field))
    limit = MAX_TOKENS if kind == "tokens" else None
    return AudienceSpec(kind=kind, values=_names(audience[kind], field, limit=limit))


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise _invalid(key, "must be a boolean")


def parse(data: Any) -> CampaignCreate:
    if not isinstance(data, dict):
        raise errors.BadRequest("The request body must be a JSON object", field="body")
    _known_keys(data, TOP_LEVEL)
    send_at = _send_at(data)
    ttl_s = _integer(data, "ttl", DEFAULT_TTL_S, 0, MAX_SECONDS)
    push_tag = _text(data, "push_tag", "push_tag", limit=100, required=False)
    if push_tag is not None and not push_tag:
        raise _invalid("push_tag", "must be 1-100 characters")
    display_time_s = _integer(data, "display_time", DEFAULT_DISPLAY_TIME_S, 0, MAX_SECONDS)
    is_transactional = _flag(data, "is_transactional")
    content = _content(data)
    return CampaignCreate(
        content=content,
        audience=parse_audience(data),
        send_at=send_at,
        ttl_s=ttl_s,
        display_time_s=display_time_s,
        push_tag=push_tag,
        is_transactional=is_transactional,
        # Transactional messages are personal and time-bound: ask push services to wake the device.
        urgency="high" if is_transactional else "normal",
    )

"""Turning request bodies into typed values, with errors that name the field."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Path
from pydantic import BaseModel, ValidationError

from clarion import errors

M = TypeVar("M", bound=BaseModel)

# Campaign ids have 19 digits (ids.py), as many as a signed 64-bit id (PostgreSQL BIGINT) can; far
# below Python's limit on converting long digit strings (which raises ValueError past 4300 digits).
MAX_ID_DIGITS = 19
# Ids are signed 64-bit integers in both databases (PostgreSQL BIGINT, SQLite INTEGER); a larger one
# cannot name a row, and SQLite's driver refuses to even compare it (OverflowError).
MIN_ID, MAX_ID = -(2**63), 2**63 - 1
# A path parameter that is a row id: outside 64 bits it is refused as an invalid field (422).
PathId = Annotated[int, Path(ge=MIN_ID, le=MAX_ID)]


def ascii_int(text: str, max_digits: int = MAX_ID_DIGITS) -> int | None:
    """The value of a plain ASCII decimal like "42", or None.

    str.isdigit() alone also accepts "²" or "٣", which int() then refuses or reads as another number.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > max_digits:
        return None
    value = int(text)
    return value if value <= MAX_ID else None


# Text neither database can take: PostgreSQL refuses NUL in text, and an unpaired surrogate (which
# JSON's \uD800 escapes can produce) cannot be encoded as UTF-8 at all.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


# RFC 3986 §2: the characters a URI may hold (unreserved, reserved, and '%' for pct-encoding).
_URI_CHARS = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*$")
_PCT_BROKEN = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Schemes that run script or reach local or in-memory content when a browser or an app opens them.
UNSAFE_SCHEMES = frozenset({"javascript", "vbscript", "data", "file", "blob", "filesystem", "about"})
WHITESPACE_AT_ENDS = "must not start or end with spaces or tabs"
NOT_A_URI = "must be a valid URI (RFC 3986)"


# The picture formats Gravitec accepts for `icon` and `image` (and an app's default icon).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def http_url_problem(value: str, *, images_only: bool = False) -> str | None:
    """The clickable-URL rule, http(s) only; `images_only`: a path ending in a picture's extension
    (Gravitec's redirect_url, icon and image; an app's site URL and default icon). None: it passes."""
    problem = clickable_url_problem(value)
    if problem == WHITESPACE_AT_ENDS:
        return problem
    if problem is not None or value.split(":", 1)[0].lower() not in ("http", "https"):
        return "must be a valid http(s) URL"
    if images_only and not urlsplit(value).path.lower().endswith(IMAGE_SUFFIXES):
        return "must end with .jpg, .jpeg or .png"
    return None


def clickable_url_problem(value: str) -> str | None:
    """The one rule for every URL a person can click or tap in a notification (its target, its
    buttons', a Swrve deeplink or button action), on every surface; None when `value` passes.

    An absolute RFC 3986 URI, with nothing around it, whose scheme does not run script or open local
    content (javascript:, data:, file: ...); http(s) URLs need a host. Custom schemes (an app's deep
    links, mailto:) pass. Surfaces may demand more of a field (Gravitec's redirect_url: http(s) only).
    """
    if value != value.strip():
        return WHITESPACE_AT_ENDS
    if not _URI_CHARS.match(value) or _PCT_BROKEN.search(value):
        return NOT_A_URI  # also keeps out tabs, newlines and spaces that would hide "java\tscript:"
    scheme = value.split(":", 1)[0].lower()
    if scheme in UNSAFE_SCHEMES:
        return f"must not use the {scheme}: scheme"
    if scheme in ("http", "https"):
        try:
            host = urlsplit(value).netloc
        except ValueError:  # e.g. an unclosed "[" in the host
            return NOT_A_URI
        if not host:
            return NOT_A_URI
    return None


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise errors.BadRequest("The request body must be a JSON object", field="body")
    try:
        data = json.loads(body)
    except RecursionError:
        raise errors.BadRequest("The request body is nested too deeply", field="body") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
        raise errors.BadRequest(f"The request body is not valid JSON: {exc}", field="body") from None
    check_storable(data)
    return data


def check_storable(data: Any) -> None:
    """Every string in `data` (keys and values) can be stored, else InvalidField naming the first."""
    unstorable = _unstorable_at(data)
    if unstorable is not None:
        raise errors.InvalidField(
            f"{unstorable}: must not contain NUL characters or unpaired surrogates", field=unstorable
        )


def _unstorable_at(data: Any) -> str | None:
    """The path of the first string (key or value) that cannot be stored, in document order."""
    stack: list[tuple[tuple[int | str, ...], Any]] = [((), data)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, str):
            if not storable(value):
                return field_path(loc)
        elif isinstance(value, dict):
            for key in value:
                if not storable(key):
                    return field_path(loc)
            stack.extend(((*loc, key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(((*loc, index), item) for index, item in reversed(list(enumerate(value))))
    return None


def field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "body"


def validate(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise errors.BadRequest("The request body must be a JSON object", field="body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = field_path(tuple(first["loc"]))
        raise errors.InvalidField(f"{field}: {first['msg']}", field=field) from None


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a body a handler reads itself: the model's JSON schema with its
    `$defs` inlined, since a `#/$defs/...` reference would point at the OpenAPI document's root, where
    there are none (ReDoc refuses the whole document over it)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    return {"requestBody": {"content": {"application/json": {"schema": inline(schema)}}}}


def time_zone(value: str, field: str) -> str:
    """An IANA time zone name that zoneinfo knows (the server's tzdata), or a 422 naming the field."""
    if not value or len(value) > 64 or not value.isascii() or value.startswith(("/", ".")) or ".." in value:
        raise errors.InvalidField(
            f"{field}: must be an IANA time zone name such as Europe/Paris", field=field
        )
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise errors.InvalidField(
            f"{field}: unknown time zone {value!r} (an IANA name such as Europe/Paris)", field=field
        ) from None
    return value


def clock_time(value: str, field: str) -> str:
    """A local wall-clock time "HH:MM" (24-hour), or a 422 naming the field."""
    match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", value)
    if match is None:
        raise errors.InvalidField(f"{field}: must be a time of day as HH:MM (00:00-23:59)", field=field)
    return value

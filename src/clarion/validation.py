"""Turning request bodies into typed values, with errors that name the field."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from clarion import errors

M = TypeVar("M", bound=BaseModel)

# 18 digits always fit a signed 64-bit id (PostgreSQL BIGINT) and stay far below Python's limit on
# converting long digit strings (which raises ValueError past 4300 digits).
MAX_ID_DIGITS = 18


def ascii_int(text: str, max_digits: int = MAX_ID_DIGITS) -> int | None:
    """The value of a plain ASCII decimal like "42", or None.

    str.isdigit() alone also accepts "²" or "٣", which int() then refuses or reads as another number.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > max_digits:
        return None
    return int(text)


# Text neither database can take: PostgreSQL refuses NUL in text, and an unpaired surrogate (which
# JSON's \uD800 escapes can produce) cannot be encoded as UTF-8 at all.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise errors.BadRequest("The request body must be a JSON object", field="body")
    try:
        data = json.loads(body)
    except RecursionError:
        raise errors.BadRequest("The request body is nested too deeply", field="body") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
        raise errors.BadRequest(f"The request body is not valid JSON: {exc}", field="body") from None
    unstorable = _unstorable_at(data)
    if unstorable is not None:
        raise errors.InvalidField(
            f"{unstorable}: must not contain NUL characters or unpaired surrogates", field=unstorable
        )
    return data


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

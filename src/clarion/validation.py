"""Turning request bodies into typed values, with errors that name the field."""

from __future__ import annotations

import json
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


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise errors.BadRequest("The request body must be a JSON object", field="body")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.BadRequest(f"The request body is not valid JSON: {exc}", field="body") from None


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

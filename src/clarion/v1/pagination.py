"""Cursor pagination of /v1 lists: `?limit=&cursor=` in, `{"items", "next_cursor"}` out.

A cursor is opaque to clients (base64url of the last item's sort key); a list ends when
`next_cursor` is null. Keyset paging: a page costs its own size however deep it is.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from clarion import errors

T = TypeVar("T")
MAX_LIMIT = 200
DEFAULT_LIMIT = 50

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")]
CursorQuery = Annotated[
    str | None, Query(max_length=64, description="`next_cursor` of the previous page; absent: the first")
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(key: int) -> str:
    return base64.urlsafe_b64encode(str(key).encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> int | None:
    """The sort key a cursor carries (None: from the start); a cursor Clarion did not make is a 422."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not (text.isdigit() and len(text) <= 20):
        raise errors.InvalidField("cursor: is not a cursor from a previous page", field="cursor")
    return int(text)


def page_of(rows: Sequence[T], limit: int, key: Callable[[T], int]) -> tuple[list[T], str | None]:
    """Cut `rows` (fetched with `limit + 1`) to a page and the cursor of the next, if any."""
    if len(rows) <= limit:
        return list(rows), None
    kept = list(rows[:limit])
    return kept, encode_cursor(key(kept[-1]))

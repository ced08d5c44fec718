"""Keyset-paged lists of an app's resources (subscribers, segments, Push API campaigns): the page
asked for as one dependency, and a page cut from `limit + 1` rows (v1/pagination.py's conventions)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends

from clarion.v1.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, decode_cursor, page_of

Row = TypeVar("Row")
Item = TypeVar("Item")


@dataclass(frozen=True)
class PageAsked:
    limit: int
    after: int  # the cursor's key (0: from the start)

    @property
    def fetch(self) -> int:
        """Rows to read: one more than the page, to tell whether another follows."""
        return self.limit + 1


async def page_asked(limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None) -> PageAsked:
    return PageAsked(limit, decode_cursor(cursor) or 0)


PageDep = Annotated[PageAsked, Depends(page_asked)]


def paged(
    rows: Sequence[Row], asked: PageAsked, key: Callable[[Row], int], read: Callable[[Row], Item]
) -> Page[Item]:
    items, next_cursor = page_of(rows, asked.limit, key)
    return Page(items=[read(row) for row in items], next_cursor=next_cursor)

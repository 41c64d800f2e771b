"""Pages of results, independent of how a dialect names and renders them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from personae.errors import InvalidRequest

T = TypeVar("T")

# The deepest page of any list. Unbounded, `?page=10**20` made an OFFSET no database takes
# (a 500); bounded, the offset stays below MAX_PAGE times the largest page size (1,000),
# far inside a 64-bit integer and past what offset paging serves well anyway.
MAX_PAGE = 10_000


@dataclass(frozen=True)
class PageRequest:
    page: int
    size: int

    def __post_init__(self) -> None:
        # The routes' `page` parameters state the same bound (api/types.py: PageNumber).
        if not 1 <= self.page <= MAX_PAGE:
            raise InvalidRequest(
                f"page: must be from 1 to {MAX_PAGE}", details={"field": "page", "max": MAX_PAGE}
            )

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


@dataclass(frozen=True)
class CursorRequest:
    """The page after the row a cursor names (keyset paging), as the client sent it: the
    list that made the cursor reads it."""

    cursor: str
    size: int


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    request: PageRequest | CursorRequest
    # Where the next page starts, for a list that offers cursors; None after the last page.
    next_cursor: str | None = None

    @property
    def number(self) -> int | None:
        """The page's number; None for a page read by cursor (its place is not counted)."""
        return self.request.page if isinstance(self.request, PageRequest) else None

    @property
    def pages(self) -> int:
        return math.ceil(self.total / self.request.size) if self.total else 0

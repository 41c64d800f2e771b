"""Pages that know how to fetch the next one, whichever of the API's three list shapes.

- the characters API: `{"data": [...], "pagination": {"total", "page", "limit", "pages"}}`,
  plus `next_cursor` in the catalogue, which the next page then follows (a cursor does not
  move when characters are added or re-ranked before it);
- the agents API's images: `{"data": [...], "pagination": {..., "next_page"}}`;
- the agents API's other lists: a plain array, whose next page exists while pages come
  back full.

Iterating a page (`for item in page`, `async for item in page`) yields every item from it
to the last page, fetching as it goes; `data` is this page's items only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from enum import Enum
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from personae.client._response import RateLimit, ResponseInfo

M = TypeVar("M", bound=BaseModel)


class Shape(Enum):
    CHARACTERS = "characters"
    IMAGES = "images"
    ARRAY = "array"


class _PageBase(Generic[M]):
    def __init__(
        self,
        response: httpx.Response,
        item_type: type[M],
        shape: Shape,
        params: Mapping[str, Any],
    ) -> None:
        body = response.json()
        self.response = ResponseInfo.of(response)
        self.shape = shape
        self._item_type = item_type
        self._params = dict(params)
        items = body if shape is Shape.ARRAY else body["data"]
        self.data: list[M] = [item_type.model_validate(item) for item in items]
        self.pagination: dict[str, Any] | None = (
            None if shape is Shape.ARRAY else dict(body["pagination"])
        )

    @property
    def rate_limit(self) -> RateLimit:
        """The rate-limit headers of the answer this page came from."""
        return self.response.rate_limit

    @property
    def total(self) -> int | None:
        """How many items all pages hold, where the API says (not for plain arrays)."""
        if self.pagination is None:
            return None
        total = self.pagination.get("total", self.pagination.get("total_items"))
        return int(total) if total is not None else None

    def next_page_params(self) -> dict[str, Any] | None:
        """The query of the next page, or None on the last one."""
        params = dict(self._params)
        if self.shape is Shape.ARRAY:
            if len(self.data) < int(params.get("page_size", 100)) or not self.data:
                return None
            return params | {"page": int(params.get("page", 1)) + 1}
        assert self.pagination is not None
        if self.shape is Shape.IMAGES:
            following = self.pagination.get("next_page")
            return None if following is None else params | {"page": following}
        if self.pagination.get("next_cursor"):
            params.pop("page", None)
            return params | {"cursor": self.pagination["next_cursor"]}
        if "next_cursor" in self.pagination:  # the catalogue's last page
            return None
        page, pages = self.pagination.get("page") or 1, self.pagination.get("pages") or 0
        return params | {"page": page + 1} if page < pages else None

    def has_next_page(self) -> bool:
        """Whether another page follows this one."""
        return self.next_page_params() is not None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(data={self.data!r}, pagination={self.pagination!r})"


class SyncPage(_PageBase[M]):
    """One page of a list; iterate it for every item of every page."""

    def __init__(
        self,
        response: httpx.Response,
        item_type: type[M],
        shape: Shape,
        params: Mapping[str, Any],
        fetch: Callable[[Mapping[str, Any]], SyncPage[M]],
    ) -> None:
        super().__init__(response, item_type, shape, params)
        self._fetch = fetch

    def get_next_page(self) -> SyncPage[M] | None:
        """Fetches the page after this one (None after the last)."""
        params = self.next_page_params()
        return None if params is None else self._fetch(params)

    def iter_pages(self) -> Iterator[SyncPage[M]]:
        """This page, then each following one."""
        page: SyncPage[M] | None = self
        while page is not None:
            yield page
            page = page.get_next_page()

    def __iter__(self) -> Iterator[M]:
        for page in self.iter_pages():
            yield from page.data


class AsyncPage(_PageBase[M]):
    """One page of a list; `async for` over it for every item of every page."""

    def __init__(
        self,
        response: httpx.Response,
        item_type: type[M],
        shape: Shape,
        params: Mapping[str, Any],
        fetch: Callable[[Mapping[str, Any]], Awaitable[AsyncPage[M]]],
    ) -> None:
        super().__init__(response, item_type, shape, params)
        self._fetch = fetch

    async def get_next_page(self) -> AsyncPage[M] | None:
        """Fetches the page after this one (None after the last)."""
        params = self.next_page_params()
        return None if params is None else await self._fetch(params)

    async def iter_pages(self) -> AsyncIterator[AsyncPage[M]]:
        """This page, then each following one."""
        page: AsyncPage[M] | None = self
        while page is not None:
            yield page
            page = await page.get_next_page()

    async def __aiter__(self) -> AsyncIterator[M]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item

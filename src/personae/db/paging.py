"""One page of a query's rows and the total they are a page of."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from personae.pagination import PageRequest

T = TypeVar("T")


async def fetch_page(
    session: AsyncSession, stmt: Select[T], count: Select[Any], page: PageRequest
) -> tuple[Sequence[T], int]:
    """`stmt` (already ordered) cut to `page`, and `count`'s total."""
    rows = (await session.scalars(stmt.offset(page.offset).limit(page.size))).all()
    total = int(await session.scalar(count) or 0)
    return rows, total

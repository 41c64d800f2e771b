"""One UPDATE for many rows, each with its own values (an executemany)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from personae.db.base import Base


async def update_each(
    session: AsyncSession, model: type[Base], changes: dict[str, dict[str, Any]]
) -> None:
    """Set, on each row of `model` named by its id, the values given for it; every row's
    values name the same columns. Core rather than ORM: the ORM's bulk update by primary
    key does not batch statements with a WHERE of their own."""
    if not changes:
        return
    table = cast(Table, model.__table__)
    columns = next(iter(changes.values())).keys()
    stmt = (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values({column: bindparam(f"new_{column}") for column in columns})
    )
    rows = [{"row_id": row_id} | {f"new_{c}": v for c, v in values.items()}
            for row_id, values in changes.items()]  # fmt: skip
    await session.execute(stmt, rows)

"""`INSERT … ON CONFLICT` for the two back ends, which spell it the same way but through
dialect-specific SQLAlchemy constructs."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_for(session: AsyncSession, table: Any) -> Any:
    """An insert construct with `on_conflict_do_nothing/do_update` for the session's database."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def affected_rows(result: Result[Any]) -> int:
    """Rows an INSERT/UPDATE/DELETE touched (`execute` is typed as returning any Result)."""
    return cast(CursorResult[Any], result).rowcount

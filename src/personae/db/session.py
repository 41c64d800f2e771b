"""The async engine and session factory, with SQLite tuned for a server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import URL, event, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from personae.config import Settings
from personae.db import sqlite_driver


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.resolved_database_url
    # hide_parameters: a database error's message (logged, and in a traceback) shows the
    # statement but never its values, which can be webhook secrets or people's messages.
    pool = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
    }
    if is_sqlite(url):
        # One file, one writer at a time (WAL lets readers run beside it): a connection
        # waits for the write lock up to the busy timeout rather than failing at once.
        settings.ensure_data_dir()
        engine = create_async_engine(
            _one_hop(url), connect_args={"timeout": 30}, hide_parameters=True, **pool
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True, hide_parameters=True, **pool)


def _one_hop(url: str) -> URL:
    """aiosqlite's URL on our dialect of it, which makes one thread hop per statement
    (db/sqlite_driver.py); any other SQLite driver is left as it is."""
    parsed = make_url(url)
    if parsed.drivername == "sqlite+aiosqlite":
        return parsed.set(drivername=f"sqlite+{sqlite_driver.DRIVER}")
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class Writer:
    """Opens the write transactions of hot paths (chat turns and their reservations).

    On SQLite the file takes one writer at a time. A writer that waits for that lock inside
    SQLite holds a pooled connection, and a thread, while it waits; with enough of them
    waiting, the pool is empty and every other request, reads included, waits for a
    connection. So on SQLite this process's writers queue on an asyncio lock first and take
    a connection only when it is their turn. PostgreSQL locks rows, not the database, and
    needs no such line.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], serialise: bool) -> None:
        self.sessionmaker = sessionmaker
        self._lock = asyncio.Lock() if serialise else None

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        async with contextlib.AsyncExitStack() as stack:
            if self._lock is not None:
                await stack.enter_async_context(self._lock)
            session = await stack.enter_async_context(self.sessionmaker.begin())
            yield session

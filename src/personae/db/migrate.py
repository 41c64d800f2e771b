"""Run Alembic migrations from code: on server start, in the CLI and in tests.

Processes that start together (`serve --workers 4`, a deployment's replicas, a worker
beside them) take one start-up lock around migrating *and* seeding (the default plans, the
embedded model): without it two would insert the same plan (one fails) or register the
embedded model twice. PostgreSQL: an advisory lock, on a connection of its own; SQLite: a
lock on a file beside the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import AsyncIterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from personae.config import Settings
from personae.db.session import is_sqlite

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_sync(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


async def upgrade(settings: Settings) -> None:
    """Bring the schema to head. Alembic's env runs its own event loop, so use a thread."""
    settings.ensure_data_dir()
    await asyncio.to_thread(upgrade_sync, settings.resolved_database_url)


# Not the migration lock that the Alembic environment takes inside (env.py): this one is
# held around it, on another connection.
STARTUP_LOCK_ID = 0x7E250B


@contextlib.asynccontextmanager
async def startup_lock(settings: Settings) -> AsyncIterator[None]:
    """Held by one starting process at a time, across machines on PostgreSQL."""
    url = settings.resolved_database_url
    if is_sqlite(url):
        settings.ensure_data_dir()
        with (settings.data_dir / "startup.lock").open("a") as handle:
            await asyncio.to_thread(fcntl.flock, handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return
    # A connection outside the pool, which a small pool (a test's single connection)
    # needs for the seeding inside.
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": STARTUP_LOCK_ID})
            await connection.commit()
            try:
                yield
            finally:
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": STARTUP_LOCK_ID}
                )
                await connection.commit()
    finally:
        await engine.dispose()

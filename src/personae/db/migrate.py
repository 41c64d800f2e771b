"""Run Alembic migrations from code: on server start, in the CLI and in tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from personae.config import Settings

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

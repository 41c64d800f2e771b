"""A throw-away PostgreSQL database for a benchmark: created on the server the tests use
(`PERSONAE_TEST_POSTGRES_URL`, default the local one) and dropped afterwards."""

from __future__ import annotations

import os
import uuid

import asyncpg

PG_SERVER = os.environ.get(
    "PERSONAE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _dsn(database: str) -> str:
    base, _, _ = PG_SERVER.rpartition("/")
    return f"{base}/{database}".replace("postgresql+asyncpg://", "postgresql://")


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(_dsn(PG_SERVER.rpartition("/")[2]))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database() -> tuple[str, str]:
    """A new empty database: its name, and its async SQLAlchemy URL."""
    name = f"personae_bench_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    return name, _dsn(name).replace("postgresql://", "postgresql+asyncpg://")


async def drop_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

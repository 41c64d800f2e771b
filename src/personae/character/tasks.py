"""The periodic trending refresh, run by every server process.

It is idempotent (a recomputation from the daily buckets), so several processes running
it at once is harmless. When the task queue arrives it becomes a scheduled job there.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from personae.character.service import CharacterService
from personae.storage.files import Storage

log = logging.getLogger("personae")


async def refresh_trending(
    sessionmaker: async_sessionmaker[AsyncSession], storage: Storage
) -> None:
    async with sessionmaker.begin() as session:
        await CharacterService(session, storage).refresh_trending()


async def refresh_trending_forever(
    sessionmaker: async_sessionmaker[AsyncSession], storage: Storage, interval: float
) -> None:
    while True:
        try:
            await refresh_trending(sessionmaker, storage)
        except (SQLAlchemyError, OSError):
            log.exception("trending refresh failed; will retry")
        await asyncio.sleep(interval)

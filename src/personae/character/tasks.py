"""The periodic trending refresh, run by every server process.

It is idempotent (a recomputation from the daily buckets), so several processes running
it at once is harmless. When the task queue arrives it becomes a scheduled job there.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError

from personae.character.service import CharacterService
from personae.state import AppState

log = logging.getLogger("personae")


async def refresh_trending(state: AppState) -> None:
    async with state.sessionmaker.begin() as session:
        service = CharacterService(session, state.storage, state.settings.max_upload_bytes)
        await service.refresh_trending()


async def refresh_trending_forever(state: AppState) -> None:
    while True:
        try:
            await refresh_trending(state)
        except (SQLAlchemyError, OSError):
            log.exception("trending refresh failed; will retry")
        await asyncio.sleep(state.settings.trending_refresh_seconds)

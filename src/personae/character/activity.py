"""Chat messages counted toward trending, written in batches rather than by every turn.

A turn's message bumps the character's `chats_7d`, its tag rows' copy of it and the day's
bucket (`character_activity`): three statements and three row locks inside the turn's
own transaction, for a figure only the `trending` sort reads and that a periodic refresh
recomputes anyway (character/tasks.py). So a turn adds to this process's tally, and the
tally is written every `interval` seconds (one second by default), at shutdown, and when a
test asks. Trending then runs up to that long behind the messages; a process killed
between two writes loses its last second of counts toward a seven-day figure. Conversations
started (`chat_count`, read on every character page) are still counted by the turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import date, datetime

from sqlalchemy.exc import SQLAlchemyError

from personae.character.repository import CharacterRepository
from personae.db.session import Writer

log = logging.getLogger("personae")

DEFAULT_INTERVAL_SECONDS = 1.0


class ChatActivity:
    def __init__(self, writer: Writer, interval: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self.writer = writer
        self.interval = interval
        self._pending: Counter[tuple[str, date]] = Counter()
        self._lock = asyncio.Lock()

    def record(self, character_id: str, now: datetime) -> None:
        """One chat message with `character_id` at `now` (no I/O)."""
        self._pending[(character_id, now.date())] += 1

    async def flush(self) -> None:
        """Write the tally so far in one transaction, in character order (the house's lock
        order). On a failure the tally is kept for the next flush, without the characters
        deleted meanwhile (whose counts have nowhere to go)."""
        async with self._lock:
            pending, self._pending = self._pending, Counter()
            if not pending:
                return
            try:
                async with self.writer.begin() as session:
                    characters = CharacterRepository(session)
                    existing = await characters.existing_ids({cid for cid, _ in pending})
                    for (character_id, day), chats in sorted(pending.items()):
                        if character_id in existing:
                            await characters.add_activity(character_id, day, chats)
            except BaseException:
                self._pending.update(pending)
                raise

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except (SQLAlchemyError, OSError):
                log.exception("could not write the chat activity toward trending; will retry")

    async def close(self) -> None:
        try:
            await self.flush()
        except (SQLAlchemyError, OSError):
            log.exception("the last chat activity toward trending was not written")

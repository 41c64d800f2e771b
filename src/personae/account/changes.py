"""Announcing that accounts or keys changed, so that every process's authentication cache
forgets them (personae.account.auth). A sessionmaker made by AppState carries the
announcer in each session's `info`; a session without one (a test's own) announces nothing.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

ANNOUNCER = "personae.auth_announcer"


class Announcer(Protocol):
    def announce(self) -> None: ...


def announce_after_commit(session: AsyncSession) -> None:
    """Announce the change once `session` commits (never if it rolls back)."""
    announcer: Announcer | None = session.info.get(ANNOUNCER)
    if announcer is None:
        return
    event.listen(session.sync_session, "after_commit", lambda _s: announcer.announce(), once=True)

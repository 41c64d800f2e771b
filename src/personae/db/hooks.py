"""Side effects that must wait for the transaction (deleting files a row pointed to)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("personae")
_background: set[asyncio.Task[None]] = set()


def after_commit(session: AsyncSession, action: Callable[[], Awaitable[None]]) -> None:
    """Run `action` once the session's transaction commits; never if it rolls back."""

    def on_commit(_session: Any) -> None:
        task = asyncio.get_running_loop().create_task(_run(action))
        _background.add(task)  # keep a reference until it finishes
        task.add_done_callback(_background.discard)

    event.listen(session.sync_session, "after_commit", on_commit, once=True)
    event.listen(
        session.sync_session,
        "after_rollback",
        lambda _s: (
            event.remove(session.sync_session, "after_commit", on_commit)
            if event.contains(session.sync_session, "after_commit", on_commit)
            else None
        ),
        once=True,
    )


async def _run(action: Callable[[], Awaitable[None]]) -> None:
    try:
        await action()
    except Exception:  # a failed clean-up must not take anything else down; it is logged
        log.exception("after-commit action failed")

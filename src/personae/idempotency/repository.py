"""Every SQL statement about idempotency keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from personae.db.upsert import affected_rows, insert_for
from personae.models import IdempotencyKey, ServerInstance


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(self, values: dict[str, Any]) -> bool:
        """Insert a new key's row unless the account already has one for that key; True if
        this insert made it. The primary key decides, so two concurrent inserts cannot both
        succeed (on PostgreSQL the second waits for the first's transaction to end)."""
        stmt = (
            insert_for(self.session, IdempotencyKey)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["account_id", "key"])
        )
        return affected_rows(await self.session.execute(stmt)) == 1

    async def get(self, account_id: str, key: str) -> IdempotencyKey | None:
        stmt = select(IdempotencyKey).where(
            IdempotencyKey.account_id == account_id, IdempotencyKey.key == key
        )
        return (await self.session.scalars(stmt)).first()

    async def replace(self, account_id: str, key: str, claim: str, values: dict[str, Any]) -> bool:
        """Overwrite the row if `claim` still holds it (a compare-and-swap: of two requests
        taking over one expired or abandoned row, one wins)."""
        stmt = (
            update(IdempotencyKey)
            .where(
                IdempotencyKey.account_id == account_id,
                IdempotencyKey.key == key,
                IdempotencyKey.claim == claim,
            )
            .values(**values)
        )
        return affected_rows(await self.session.execute(stmt)) == 1

    async def delete(self, account_id: str, key: str, claim: str) -> bool:
        stmt = delete(IdempotencyKey).where(
            IdempotencyKey.account_id == account_id,
            IdempotencyKey.key == key,
            IdempotencyKey.claim == claim,
        )
        return affected_rows(await self.session.execute(stmt)) == 1

    async def instance_alive(self, instance_id: str, live_since: datetime) -> bool:
        """Whether a server process has beaten since `live_since` (conversation/turns.py)."""
        stmt = select(ServerInstance.id).where(
            ServerInstance.id == instance_id, ServerInstance.heartbeat_at >= live_since
        )
        return (await self.session.scalar(stmt)) is not None

    async def delete_expired(self, now: datetime) -> int:
        stmt = delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now)
        return affected_rows(await self.session.execute(stmt))

"""The reservation record of every chat turn, and its reconciliation.

A turn holds quota and balance from its first transaction to its second (conversation/
chat.py). Its `chat_turns` row, written in the first, says who is running it: a server
instance, which beats in `server_instances` while it lives. The turn ends `settled` or
`released`, each by claiming the row first (the lock order's step 0, account/billing.py),
so that it happens once whoever gets there first: the turn itself, its failure, the
shutdown of its instance, or the sweep that finds it abandoned, by a dead instance (a
SIGKILL, a power cut) or by the request that prepared it (dropped before it ran), and gives
back its quota and balance and marks its user's message unanswered. The sweep runs at
start-up and then with every heartbeat, in every process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from personae.account.billing import Billing, Consumption, Hold
from personae.conversation.repository import TurnRepository
from personae.db.base import utcnow
from personae.db.session import Writer
from personae.ids import new_id
from personae.models import ChatTurn

log = logging.getLogger("personae")
#: heartbeats an instance may miss before its running turns count as abandoned
MISSED_BEATS = 3
#: how long the row of an instance that stopped beating is kept
FORGET_AFTER = timedelta(days=1)


class TurnLedger:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        writer: Writer,
        heartbeat_seconds: float,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.writer = writer
        self.heartbeat_seconds = heartbeat_seconds
        self.instance_id = new_id("inst")
        # This process's turns in memory, by id. A turn that was prepared but never run (its
        # client left before the response began) is dropped without settling or releasing:
        # once it is gone from here, the sweep releases it.
        self._live: weakref.WeakValueDictionary[str, object] = weakref.WeakValueDictionary()

    def track(self, turn_id: str, turn: object) -> None:
        """Watch a prepared turn: while it exists in memory, its record is its own."""
        self._live[turn_id] = turn

    async def start(
        self,
        session: AsyncSession,
        hold: Hold,
        model_id: str,
        conversation_id: str | None,
        user_message_id: str | None,
    ) -> str:
        """Record a running turn (in the turn's first transaction)."""
        turn = ChatTurn(
            id=new_id("turn"),
            account_id=hold.account_id,
            instance_id=self.instance_id,
            status="running",
            period=hold.period,
            hold_micros=hold.micros,
            model_id=model_id,
            conversation_id=conversation_id,
            user_message_id=user_message_id,
            created_at=utcnow(),
        )
        await TurnRepository(session).add(turn)
        return turn.id

    async def settle(
        self,
        session: AsyncSession,
        turn_id: str,
        hold: Hold,
        charged: int,
        consumption: Consumption,
    ) -> bool:
        """Claim the turn as settled, charge it and add it to the usage ledger; False if
        it was released meanwhile (then nothing is charged or recorded, and the caller must
        not store the answer)."""
        charged = min(charged, hold.micros)
        now = utcnow()
        if await TurnRepository(session).claim(turn_id, "settled", now, charged) is None:
            return False
        await Billing(session).settle(hold, charged, consumption, now)
        return True

    async def release(self, turn_id: str) -> bool:
        """Give back what the turn holds and mark its message unanswered; once."""
        async with self.writer.begin() as session:
            return await self._release(session, turn_id)

    async def _release(self, session: AsyncSession, turn_id: str) -> bool:
        turns = TurnRepository(session)
        turn = await turns.claim(turn_id, "released", utcnow())
        if turn is None:
            return False
        await Billing(session).release(Hold(turn.account_id, turn.period, True, turn.hold_micros))
        if turn.user_message_id:
            await turns.mark_unanswered(turn.user_message_id)
        return True

    async def sweep(self) -> int:
        """Release the turns of instances that stopped beating, and this instance's turns
        that no request holds any more; how many were released."""
        now = utcnow()
        live_since = now - timedelta(seconds=self.heartbeat_seconds * MISSED_BEATS)
        async with self.sessionmaker() as session:
            turns = TurnRepository(session)
            abandoned = list(await turns.abandoned(live_since))
            # Older than a beat: a turn is tracked a moment after its record commits.
            mine = await turns.running_of(
                self.instance_id, started_before=now - timedelta(seconds=self.heartbeat_seconds)
            )
        abandoned += [turn_id for turn_id in mine if turn_id not in self._live]
        released = 0
        for turn_id in abandoned:
            released += await self.release(turn_id)
        if released:
            log.warning("released %d chat turns that no running request holds", released)
        return released

    async def beat(self) -> None:
        async with self.writer.begin() as session:
            await TurnRepository(session).beat(self.instance_id, os.getpid(), utcnow())

    async def run_forever(self) -> None:
        """Beat, and sweep, every `heartbeat_seconds` (the first at once: start-up)."""
        while True:
            try:
                await self.beat()
                await self.sweep()
            except Exception:  # a database hiccup must not end the loop; the next try may work
                log.exception("chat turn heartbeat or sweep failed")
            await asyncio.sleep(self.heartbeat_seconds)

    async def stop(self) -> int:
        """At shutdown: release this instance's turns still running (their requests were
        cut off by the grace period) and forget the instance."""
        async with self.sessionmaker() as session:
            running = await TurnRepository(session).running_of(self.instance_id)
        released = 0
        for turn_id in running:
            released += await self.release(turn_id)
        async with self.writer.begin() as session:
            await TurnRepository(session).forget_instances(
                self.instance_id, utcnow() - FORGET_AFTER
            )
        return released

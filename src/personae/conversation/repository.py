"""Every SQL statement about conversations, messages, chat usage and balance holds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, joinedload

from personae.db.upsert import affected_rows
from personae.models import ChatTurn, Conversation, Message, ServerInstance
from personae.pagination import PageRequest


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, conversation: Conversation) -> None:
        self.session.add(conversation)
        await self.session.flush()

    async def set_model(self, conversation_id: str, model_id: str) -> None:
        await self.session.execute(
            update(Conversation).where(Conversation.id == conversation_id).values(llm_id=model_id)
        )

    async def get_owned(self, account_id: str, conversation_id: str) -> Conversation | None:
        stmt = (
            select(Conversation)
            .where(Conversation.id == conversation_id, Conversation.account_id == account_id)
            .options(joinedload(Conversation.character))
        )
        return (await self.session.scalars(stmt)).first()

    async def list_owned(
        self, account_id: str, page: PageRequest
    ) -> tuple[Sequence[tuple[Conversation, Message | None]], int]:
        """Newest activity first, each with its last message: one query, whatever the page."""
        last = aliased(Message)
        stmt = (
            select(Conversation, last)
            .outerjoin(last, last.id == Conversation.last_message_id)
            .where(Conversation.account_id == account_id)
            .options(joinedload(Conversation.character))
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            .offset(page.offset)
            .limit(page.size)
        )
        rows = [(c, m) for c, m in await self.session.execute(stmt)]
        count = (
            select(func.count())
            .select_from(Conversation)
            .where(Conversation.account_id == account_id)
        )
        return rows, int(await self.session.scalar(count) or 0)

    async def count_owned(self, account_id: str) -> int:
        stmt = (
            select(func.count())
            .select_from(Conversation)
            .where(Conversation.account_id == account_id)
        )
        return int(await self.session.scalar(stmt) or 0)

    async def append(self, conversation_id: str, message: Message, now: datetime) -> Message:
        """Number the message and move the conversation's counters, atomically: concurrent
        turns in one conversation get distinct, ordered `seq` values."""
        seq = await self.session.scalar(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(
                message_count=Conversation.message_count + 1,
                last_message_at=now,
                updated_at=now,
                last_message_id=message.id,
            )
            .returning(Conversation.message_count)
        )
        if seq is None:
            raise LookupError(f"conversation {conversation_id} vanished")
        message.seq = seq
        message.conversation_id = conversation_id
        self.session.add(message)
        await self.session.flush()
        return message

    async def newest_before(
        self, conversation_id: str, before_seq: int, limit: int
    ) -> Sequence[Message]:
        """Up to `limit` messages with seq < before_seq, newest first (an index range)."""
        stmt = (
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.seq < before_seq)
            .order_by(Message.seq.desc())
            .limit(limit)
        )
        return (await self.session.scalars(stmt)).all()

    async def page_messages(
        self, conversation_id: str, page: PageRequest, *, newest_first: bool
    ) -> Sequence[Message]:
        order = Message.seq.desc() if newest_first else Message.seq.asc()
        stmt = (
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(order)
            .offset(page.offset)
            .limit(page.size)
        )
        return (await self.session.scalars(stmt)).all()

    # quota and balance: conditional updates, so concurrent requests cannot overspend


class TurnRepository:
    """Every SQL statement about chat turns' reservations and the server instances that
    run them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, turn: ChatTurn) -> None:
        self.session.add(turn)
        await self.session.flush()

    async def claim(
        self, turn_id: str, status: str, now: datetime, charged_micros: int | None = None
    ) -> ChatTurn | None:
        """Move a running turn to `status`, once: the turn as it was, or None if it had
        already been settled or released (the conditional update is the lock order's
        step 0)."""
        row = (
            await self.session.execute(
                update(ChatTurn)
                .where(ChatTurn.id == turn_id, ChatTurn.status == "running")
                .values(status=status, finished_at=now, charged_micros=charged_micros)
                .returning(ChatTurn)
            )
        ).scalar_one_or_none()
        return row

    async def abandoned(self, live_since: datetime, limit: int = 500) -> Sequence[str]:
        """Running turns whose instance has not beaten since `live_since` (or is gone)."""
        live = select(ServerInstance.id).where(ServerInstance.heartbeat_at >= live_since)
        stmt = (
            select(ChatTurn.id)
            .where(ChatTurn.status == "running", ChatTurn.instance_id.not_in(live))
            .order_by(ChatTurn.created_at)
            .limit(limit)
        )
        return (await self.session.scalars(stmt)).all()

    async def running_of(
        self, instance_id: str, started_before: datetime | None = None
    ) -> Sequence[str]:
        stmt = select(ChatTurn.id).where(
            ChatTurn.status == "running", ChatTurn.instance_id == instance_id
        )
        if started_before is not None:
            stmt = stmt.where(ChatTurn.created_at < started_before)
        return (await self.session.scalars(stmt)).all()

    async def mark_unanswered(self, message_id: str) -> None:
        await self.session.execute(
            update(Message).where(Message.id == message_id).values(unanswered=True)
        )

    # instances
    async def beat(self, instance_id: str, pid: int, now: datetime) -> None:
        updated = await self.session.execute(
            update(ServerInstance).where(ServerInstance.id == instance_id).values(heartbeat_at=now)
        )
        if not affected_rows(updated):
            self.session.add(
                ServerInstance(id=instance_id, pid=pid, started_at=now, heartbeat_at=now)
            )
            await self.session.flush()

    async def forget_instances(self, instance_id: str | None, silent_since: datetime) -> None:
        """Drop this instance's row (it stops) and those of instances long silent."""
        condition = ServerInstance.heartbeat_at < silent_since
        if instance_id is not None:
            condition = condition | (ServerInstance.id == instance_id)
        await self.session.execute(delete(ServerInstance).where(condition))

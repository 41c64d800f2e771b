"""Every SQL statement about conversations, messages, chat usage and balance holds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, joinedload

from personae.db.upsert import affected_rows, insert_for
from personae.models import Conversation, Message, MonthlyUsage
from personae.pagination import PageRequest


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, conversation: Conversation) -> None:
        self.session.add(conversation)
        await self.session.flush()

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
    async def reserve_chat_request(self, account_id: str, period: str, limit: int) -> bool:
        await self.session.execute(
            insert_for(self.session, MonthlyUsage)
            .values(account_id=account_id, period=period, chat_requests=0)
            .on_conflict_do_nothing()
        )
        result = await self.session.execute(
            update(MonthlyUsage)
            .where(
                MonthlyUsage.account_id == account_id,
                MonthlyUsage.period == period,
                MonthlyUsage.chat_requests < limit,
            )
            .values(chat_requests=MonthlyUsage.chat_requests + 1)
        )
        return affected_rows(result) == 1

    async def release_chat_request(self, account_id: str, period: str) -> None:
        await self.session.execute(
            update(MonthlyUsage)
            .where(
                MonthlyUsage.account_id == account_id,
                MonthlyUsage.period == period,
                MonthlyUsage.chat_requests > 0,
            )
            .values(chat_requests=MonthlyUsage.chat_requests - 1)
        )

"""Every SQL statement about conversations, messages, chat usage and balance holds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, bindparam, case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from personae.db.batch import update_each
from personae.db.upsert import affected_rows
from personae.ids import new_id
from personae.models import (
    ChatTurn,
    Conversation,
    Image,
    Message,
    MessageAlternative,
    ServerInstance,
)
from personae.pagination import PageRequest

# What appending a message changes or may have been changed by others meanwhile: returned
# by the append's UPDATE, so the turn's answer needs no reread of the conversation.
_APPENDED = (
    Conversation.last_seq,
    Conversation.message_count,
    Conversation.last_message_at,
    Conversation.updated_at,
    Conversation.last_message_id,
    Conversation.title,
    Conversation.system_prompt,
    Conversation.llm_id,
)


# A message whose content changes loses its token count (counted again when next read).
UNCOUNTED = {"prompt_tokens": None, "prompt_tokens_model": None}


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

    async def append(
        self,
        conversation_id: str,
        message: Message,
        now: datetime,
        into: Conversation | None = None,
    ) -> Message:
        """Number the message and move the conversation's counters, atomically: concurrent
        turns in one conversation get distinct, ordered `seq` values. `into`: a copy of the
        conversation to bring up to date with what the statement returns (no reread)."""
        row = (
            await self.session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(
                    message_count=Conversation.message_count + 1,
                    last_seq=Conversation.last_seq + 1,
                    last_message_at=now,
                    updated_at=now,
                    last_message_id=message.id,
                )
                .returning(*_APPENDED)
                .execution_options(synchronize_session=False)
            )
        ).first()
        if row is None:
            raise LookupError(f"conversation {conversation_id} vanished")
        if into is not None:
            for column, value in zip(_APPENDED, row, strict=True):
                set_committed_value(into, column.key, value)
        message.seq = row.last_seq
        message.conversation_id = conversation_id
        self.session.add(message)
        await self.session.flush()
        return message

    async def store_prompt_tokens(self, counts: dict[str, int], model_id: str) -> None:
        """Record what messages cost in `model_id`'s prompts (one batched statement)."""
        await update_each(
            self.session,
            Message,
            {m: {"prompt_tokens": n, "prompt_tokens_model": model_id} for m, n in counts.items()},
        )

    # alternatives (swipes) of agent messages
    async def add_alternatives(
        self, message: Message, contents: Sequence[str], now: datetime
    ) -> None:
        """Give a new message its versions, the first selected (a greeting's alternates)."""
        self.session.add_all(
            MessageAlternative(message_id=message.id, position=i, content=c, created_at=now)
            for i, c in enumerate(contents)
        )
        message.alternative_count = len(contents)
        message.selected = 0
        await self.session.flush()

    async def add_alternative(
        self, message_id: str, content: str, tokens: int | None, now: datetime
    ) -> Message | None:
        """Append a version to a message and select it. The counter's conditional update
        locks the row, so concurrent regenerations get distinct positions; the first one
        also keeps the message's original content as version 0."""
        row = (
            await self.session.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(
                    alternative_count=case(
                        (Message.alternative_count == 0, 2), else_=Message.alternative_count + 1
                    )
                )
                .returning(Message.alternative_count, Message.content, Message.tokens)
            )
        ).one_or_none()
        if row is None:
            return None
        count, original, original_tokens = row
        new = [MessageAlternative(message_id=message_id, position=count - 1, content=content,
                                  tokens=tokens, created_at=now)]  # fmt: skip
        if count == 2:
            new.insert(0, MessageAlternative(message_id=message_id, position=0, content=original,
                                             tokens=original_tokens, created_at=now))  # fmt: skip
        self.session.add_all(new)
        await self.session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(content=content, tokens=tokens, selected=count - 1, **UNCOUNTED)
        )
        await self.session.flush()
        return await self.session.get(Message, message_id, populate_existing=True)

    async def alternatives_of(
        self, message_ids: Sequence[str]
    ) -> dict[str, list[MessageAlternative]]:
        """The versions of these messages, in order; messages without any are absent."""
        if not message_ids:
            return {}
        stmt = (
            select(MessageAlternative)
            .where(MessageAlternative.message_id.in_(message_ids))
            .order_by(MessageAlternative.message_id, MessageAlternative.position)
        )
        out: dict[str, list[MessageAlternative]] = {}
        for alternative in await self.session.scalars(stmt):
            out.setdefault(alternative.message_id, []).append(alternative)
        return out

    async def count_before(self, conversation_id: str, before_seq: int) -> int:
        stmt = select(func.count()).where(
            Message.conversation_id == conversation_id, Message.seq < before_seq
        )
        return int(await self.session.scalar(stmt) or 0)

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

    async def history_before(
        self, conversation_id: str, before_seq: int, limit: int
    ) -> Sequence[Row[str, int, str, str, int | None, str | None]]:
        """What a prompt needs of up to `limit` messages with seq < before_seq, newest
        first: plain rows, not entities, since a turn may read a thousand of them."""
        params = {"conversation_id": conversation_id, "before_seq": before_seq, "limit": limit}
        return (await self.session.execute(_HISTORY_BEFORE, params)).all()

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

    # steering: listing by character, editing, deleting, branching
    async def list_character_chats(
        self, account_id: str, page: PageRequest, character_id: str | None
    ) -> tuple[Sequence[tuple[Conversation, Message]], int]:
        """Like `list_owned`, but only conversations with a character and a message
        (optionally one character's): an index range of ix_conversations_account_character
        when filtered."""
        conditions = [
            Conversation.account_id == account_id,
            Conversation.character_id.is_not(None),
            Conversation.last_message_id.is_not(None),
        ]
        if character_id is not None:
            conditions.append(Conversation.character_id == character_id)
        last = aliased(Message)
        stmt = (
            select(Conversation, last)
            .join(last, last.id == Conversation.last_message_id)
            .where(*conditions)
            .options(joinedload(Conversation.character, innerjoin=True))
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            .offset(page.offset)
            .limit(page.size)
        )
        rows = [(c, m) for c, m in await self.session.execute(stmt)]
        count = select(func.count()).select_from(Conversation).where(*conditions)
        return rows, int(await self.session.scalar(count) or 0)

    async def get_message(self, conversation_id: str, message_id: str) -> Message | None:
        stmt = select(Message).where(
            Message.id == message_id, Message.conversation_id == conversation_id
        )
        return (await self.session.scalars(stmt)).first()

    async def reload(self, conversation: Conversation) -> None:
        """Read back the columns that statements in this transaction changed."""
        await self.session.refresh(
            conversation,
            ["title", "system_prompt", "updated_at", "last_message_at", "message_count",
             "last_seq", "last_message_id"],
        )  # fmt: skip

    async def set_details(
        self, conversation_id: str, values: dict[str, str], now: datetime
    ) -> None:
        """Change `title` and/or `system_prompt`."""
        await self.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(**values, updated_at=now)
            .execution_options(synchronize_session=False)
        )

    async def touch(self, conversation_id: str, now: datetime) -> None:
        """Move `updated_at`, locking the conversation's row before its messages'."""
        await self.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )

    async def edit_message(self, message_id: str, content: str) -> Message | None:
        """Set a message's text and, if it has versions, its selected version's: the
        message's row first, which holds the selection still while its version changes."""
        row = (
            await self.session.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(content=content, **UNCOUNTED)
                .returning(Message.alternative_count, Message.selected)
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if row is None:
            return None
        count, selected = row
        if count:
            await self.session.execute(
                update(MessageAlternative)
                .where(
                    MessageAlternative.message_id == message_id,
                    MessageAlternative.position == selected,
                )
                .values(content=content)
                .execution_options(synchronize_session=False)
            )
        return await self.session.get(Message, message_id, populate_existing=True)

    async def select_alternative(self, message_id: str, index: int) -> Message | None:
        """Make version `index` (>= 0) the message's content, in one statement that checks
        it exists; None if it does not."""
        version = select(MessageAlternative).where(
            MessageAlternative.message_id == message_id, MessageAlternative.position == index
        )
        done = await self.session.execute(
            update(Message)
            .where(Message.id == message_id, Message.alternative_count > index)
            .values(
                selected=index,
                content=version.with_only_columns(MessageAlternative.content).scalar_subquery(),
                tokens=version.with_only_columns(MessageAlternative.tokens).scalar_subquery(),
                **UNCOUNTED,
            )
            .execution_options(synchronize_session=False)
        )
        if not affected_rows(done):
            return None
        return await self.session.get(Message, message_id, populate_existing=True)

    async def delete_message(
        self, account_id: str, conversation_id: str, message_id: str, now: datetime
    ) -> bool:
        """Delete a message (its versions go with it, by foreign key) and move the
        conversation's counters: the count down one, the last message to the newest one
        left. `last_seq` stays, so no seq is handed out twice. False if it was not there.

        The lock order: the image that shows it (a job's record) first, then the
        conversation, then the message; the counters are computed after the conversation's
        row is locked, so a message appended meanwhile is seen."""
        # Images refer to their message without a foreign key: unlink, keep the image.
        await self.session.execute(
            update(Image)
            .where(Image.account_id == account_id, Image.message_id == message_id)
            .values(message_id=None)
            .execution_options(synchronize_session=False)
        )
        await self.touch(conversation_id, now)
        gone = await self.session.execute(
            delete(Message)
            .where(Message.id == message_id, Message.conversation_id == conversation_id)
            .execution_options(synchronize_session=False)
        )
        if not affected_rows(gone):
            return False
        newest = (
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.seq.desc())
            .limit(1)
        )
        await self.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(
                message_count=Conversation.message_count - 1,
                last_message_id=newest.with_only_columns(Message.id).scalar_subquery(),
                last_message_at=newest.with_only_columns(Message.created_at).scalar_subquery(),
            )
            .execution_options(synchronize_session=False)
        )
        return True

    async def delete(self, account_id: str, conversation_id: str) -> None:
        """Delete a conversation; its messages and their versions go with it (foreign keys,
        which SQLite enforces here: db/session.py). Chat turns and images stay, unlinked.
        Their rows are unlinked explicitly and first, rather than by the foreign keys'
        SET NULL after the conversation's row: the lock order puts a turn's or a job's
        record before the conversation (account/billing.py)."""
        await self.session.execute(
            update(ChatTurn)
            .where(ChatTurn.account_id == account_id, ChatTurn.conversation_id == conversation_id)
            .values(conversation_id=None)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            update(Image)
            .where(Image.account_id == account_id, Image.conversation_id == conversation_id)
            .values(conversation_id=None, message_id=None)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            delete(Conversation)
            .where(Conversation.id == conversation_id, Conversation.account_id == account_id)
            .execution_options(synchronize_session=False)
        )

    async def copy_history(
        self, source_id: str, up_to_seq: int, target: Conversation
    ) -> Message | None:
        """Copy a conversation's messages up to `up_to_seq` (and their versions) into the
        new conversation `target`, numbered from 1 with new ids, and set its counters.
        The last copy, or None if there was nothing to copy."""
        stmt = (
            select(Message)
            .where(Message.conversation_id == source_id, Message.seq <= up_to_seq)
            .order_by(Message.seq)
        )
        originals = (await self.session.scalars(stmt)).all()
        versions = await self.alternatives_of([m.id for m in originals])
        copies = [
            Message(id=new_id("msg"), conversation_id=target.id, seq=seq, role=m.role,
                    content=m.content, image_key=m.image_key, created_at=m.created_at,
                    tokens=m.tokens, prompt_tokens=m.prompt_tokens,
                    prompt_tokens_model=m.prompt_tokens_model, unanswered=m.unanswered,
                    alternative_count=m.alternative_count, selected=m.selected)
            for seq, m in enumerate(originals, start=1)
        ]  # fmt: skip
        if not copies:
            return None
        target.message_count = target.last_seq = len(copies)
        target.last_message_id, target.last_message_at = copies[-1].id, copies[-1].created_at
        self.session.add(target)
        await self.session.flush()  # the conversation, then its messages, then their versions
        self.session.add_all(copies)
        await self.session.flush()
        self.session.add_all(
            MessageAlternative(message_id=copy.id, position=v.position, content=v.content,
                               tokens=v.tokens, created_at=v.created_at)
            for original, copy in zip(originals, copies, strict=True)
            for v in versions.get(original.id, [])
        )  # fmt: skip
        await self.session.flush()
        return copies[-1]

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


# Built once: composing a statement costs more than SQLite takes to run it.
_HISTORY_BEFORE = (
    select(
        Message.id,
        Message.seq,
        Message.role,
        Message.content,
        Message.prompt_tokens,
        Message.prompt_tokens_model,
    )
    .where(
        Message.conversation_id == bindparam("conversation_id"),
        Message.seq < bindparam("before_seq"),
    )
    .order_by(Message.seq.desc())
    .limit(bindparam("limit"))
)

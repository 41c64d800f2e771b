"""Conversations and their messages, outside of generation: create, read, list."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from personae.character.service import CharacterService
from personae.conversation.repository import ConversationRepository
from personae.db.base import utcnow
from personae.errors import NotFound
from personae.ids import new_id
from personae.model.service import ModelService
from personae.models import Account, Conversation, Message
from personae.pagination import Page, PageRequest
from personae.webhook import payloads
from personae.webhook.events import emit
from personae.webhook.payloads import emit_message_posted


async def owned_conversation(
    repo: ConversationRepository, account: Account, conversation_id: str
) -> Conversation:
    """The account's conversation, or 404: another account's looks like none at all."""
    conversation = await repo.get_owned(account.id, conversation_id)
    if conversation is None:
        raise NotFound(f"No conversation {conversation_id!r}", details={"id": conversation_id})
    return conversation


class ConversationService:
    def __init__(self, session: AsyncSession, characters: CharacterService) -> None:
        self.repo = ConversationRepository(session)
        self.characters = characters

    async def get(self, account: Account, conversation_id: str) -> Conversation:
        return await owned_conversation(self.repo, account, conversation_id)

    async def create(
        self,
        account: Account,
        title: str,
        system_prompt: str,
        llm_id: str | None,
        character_id: str | None,
        initial: Sequence[tuple[str, str]] = (),
    ) -> Conversation:
        model = await ModelService(self.repo.session).resolve_llm(llm_id)
        character = (
            await self.characters.get_visible(account, character_id) if character_id else None
        )
        now = utcnow()
        conversation = Conversation(
            id=new_id("conv"),
            account_id=account.id,
            character_id=character.id if character else None,
            title=title or (character.name if character else ""),
            system_prompt=system_prompt,
            llm_id=model.id,
            created_at=now,
            updated_at=now,
            message_count=0,
        )
        await self.repo.add(conversation)
        if character is not None:
            await self.characters.record_conversation_started(character.id)
        created = await self.get(account, conversation.id)
        storage, session = self.characters.storage, self.repo.session
        await emit(session, account.id, "conversation.created",
                   payloads.conversation(storage, created, None))  # fmt: skip
        for role, content in initial:
            await self.add_message(account, created, role, content)
        if initial:
            await session.refresh(
                created, ["message_count", "last_message_at", "last_message_id", "updated_at"]
            )
        return created

    async def add_message(
        self, account: Account, conversation: Conversation, role: str, content: str
    ) -> Message:
        """Append a message (numbered, the conversation's counters moved) and announce it."""
        message = Message(id=new_id("msg"), role=role, content=content, created_at=utcnow())
        await self.repo.append(conversation.id, message, message.created_at)
        storage = self.characters.storage
        await emit(self.repo.session, account.id, "message.created",
                   payloads.message(storage, conversation, message))  # fmt: skip
        return message

    async def post_answer(self, conversation: Conversation, message: Message) -> Conversation:
        """Store a generated answer; the conversation as it now stands."""
        await self.repo.append(conversation.id, message, message.created_at)
        updated = await self.repo.get_owned(conversation.account_id, conversation.id)
        assert updated is not None  # the turn's first transaction made or found it
        await emit_message_posted(self.repo.session, self.characters.storage, updated, message)
        return updated

    async def switch_model(self, conversation: Conversation, model_id: str) -> None:
        """Record that the conversation now runs on another model (its own was disabled
        and the default costs no more: model/service.py)."""
        await self.repo.set_model(conversation.id, model_id)
        conversation.llm_id = model_id

    async def list(
        self, account: Account, page: PageRequest
    ) -> Page[tuple[Conversation, Message | None]]:
        rows, total = await self.repo.list_owned(account.id, page)
        return Page(rows, total, page)

    async def messages(
        self, account: Account, conversation_id: str, page: PageRequest, *, newest_first: bool
    ) -> Page[Message]:
        conversation = await self.get(account, conversation_id)
        rows = await self.repo.page_messages(conversation.id, page, newest_first=newest_first)
        return Page(rows, conversation.message_count, page)

    async def count(self, account: Account) -> int:
        return await self.repo.count_owned(account.id)

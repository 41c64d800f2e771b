"""Conversations and their messages, outside of generation: create, read, list, and
steer (edit, choose a version, delete, branch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from personae.account.caps import CONVERSATIONS, AccountCaps, CapCheck
from personae.character.service import CharacterService
from personae.conversation.fields import MAX_TITLE
from personae.conversation.prompt import greetings
from personae.conversation.repository import ConversationRepository
from personae.db.base import utcnow
from personae.errors import InvalidRequest, NotFound
from personae.ids import new_id
from personae.model.service import ModelService
from personae.models import Account, Conversation, Message, MessageAlternative
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
        raise _missing(conversation_id)
    return conversation


def _missing(conversation_id: str) -> NotFound:
    return NotFound(f"No conversation {conversation_id!r}", details={"id": conversation_id})


@dataclass(frozen=True)
class MessageDetail:
    """A message with what rendering it needs: its conversation and its versions."""

    conversation: Conversation
    message: Message
    versions: Sequence[MessageAlternative]


class ConversationService:
    def __init__(
        self,
        session: AsyncSession,
        characters: CharacterService,
        caps: AccountCaps | None = None,
    ) -> None:
        """`caps`: the per-account caps that starting a conversation checks (None: none)."""
        self.repo = ConversationRepository(session)
        self.characters = characters
        self.caps = caps

    async def _check_cap(self, account: Account) -> None:
        """429 if the account keeps as many conversations as it may (it stays locked, so
        the conversation added next in this transaction cannot overshoot the cap)."""
        if self.caps is not None:
            await CapCheck(self.repo.session).enforce(
                account.id,
                CONVERSATIONS,
                self.caps.conversations,
                lambda: self.repo.count_owned(account.id),
            )

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
        await self._check_cap(account)
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
        opening = greetings(character) if character is not None else []
        if opening:
            # The character speaks first; its alternate greetings are the message's
            # alternatives, to choose from like regenerated answers.
            greeting = await self.add_message(account, created, "agent", opening[0])
            if len(opening) > 1:
                await self.repo.add_alternatives(greeting, opening, greeting.created_at)
        for role, content in initial:
            await self.add_message(account, created, role, content)
        if initial or opening:
            await session.refresh(
                created, ["message_count", "last_message_at", "last_message_id", "updated_at"]
            )
        return created

    async def add_message(
        self,
        account: Account,
        conversation: Conversation,
        role: str,
        content: str,
        prompt_tokens: tuple[int, str] | None = None,
    ) -> Message:
        """Append a message (numbered, the conversation's counters moved) and announce it.
        `prompt_tokens`: what it costs in a prompt, and for which model, if counted."""
        tokens, model_id = prompt_tokens or (None, None)
        message = Message(id=new_id("msg"), role=role, content=content, created_at=utcnow(),
                          prompt_tokens=tokens, prompt_tokens_model=model_id)  # fmt: skip
        await self.repo.append(conversation.id, message, message.created_at)
        storage = self.characters.storage
        await emit(self.repo.session, account.id, "message.created",
                   payloads.message(storage, conversation, message))  # fmt: skip
        return message

    async def post_answer(self, conversation: Conversation, message: Message) -> Conversation:
        """Store a generated answer; the conversation as it now stands (404 if it was
        deleted while the answer was generated: the turn is then released)."""
        try:
            await self.repo.append(conversation.id, message, message.created_at, conversation)
        except LookupError:
            raise _missing(conversation.id) from None
        await emit_message_posted(self.repo.session, self.characters.storage, conversation, message)
        return conversation

    async def post_image(
        self, account_id: str, conversation_id: str, key: str, now: datetime
    ) -> Message | None:
        """Post a finished image in the conversation it was ordered for, as a character's
        message without text; None if the conversation was deleted while it was made."""
        message = Message(id=new_id("msg"), role="agent", content="", image_key=key, created_at=now)
        try:
            await self.repo.append(conversation_id, message, now)
        except LookupError:
            return None
        conversation = await self.repo.get_owned(account_id, conversation_id)
        if conversation is not None:
            storage = self.characters.storage
            await emit_message_posted(self.repo.session, storage, conversation, message)
        return message

    async def store_prompt_tokens(self, counts: dict[str, int], model_id: str) -> None:
        """Keep token counts made while fitting a history, so it is not counted again."""
        await self.repo.store_prompt_tokens(counts, model_id)

    async def switch_model(self, conversation: Conversation, model_id: str) -> None:
        """Record that the conversation now runs on another model (its own was disabled
        and the default costs no more: model/service.py)."""
        await self.repo.set_model(conversation.id, model_id)
        conversation.llm_id = model_id

    async def regeneration_target(self, conversation: Conversation, message_id: str) -> Message:
        """The character's message to answer again: text of the character's, with a turn
        of the user's before it (a greeting has none: its alternatives are chosen)."""
        message = await self._message(conversation, message_id)
        if message.role != "agent" or message.image_key is not None:
            raise InvalidRequest(
                "Only the character's text answers can be regenerated",
                details={"id": message_id, "role": message.role},
            )
        before = await self.repo.newest_before(conversation.id, message.seq, 1)
        if not before or before[0].role != "user":
            raise InvalidRequest(
                "This message answers no message of the user's (a greeting, say): choose "
                "among its alternatives instead",
                details={"id": message_id},
            )
        return message

    async def add_alternative(
        self, conversation: Conversation, message_id: str, content: str, tokens: int | None
    ) -> MessageDetail:
        """Keep a regenerated answer as a new version of the message, and select it."""
        message = await self.repo.add_alternative(message_id, content, tokens, utcnow())
        if message is None:  # deleted while the new version was generated
            raise self._no_message(conversation, message_id)
        versions = (await self.repo.alternatives_of([message.id])).get(message.id, [])
        storage = self.characters.storage
        await emit(self.repo.session, conversation.account_id, "message.updated",
                   payloads.message(storage, conversation, message, versions))  # fmt: skip
        return MessageDetail(conversation, message, versions)

    async def list(
        self, account: Account, page: PageRequest
    ) -> Page[tuple[Conversation, Message | None]]:
        rows, total = await self.repo.list_owned(account.id, page)
        return Page(rows, total, page)

    async def list_character_chats(
        self, account: Account, page: PageRequest, character_id: str | None = None
    ) -> Page[tuple[Conversation, Message]]:
        """The account's conversations with a character and at least one message
        (optionally with one character), each with its last message."""
        rows, total = await self.repo.list_character_chats(account.id, page, character_id)
        return Page(rows, total, page)

    async def get_character_chat(
        self, account: Account, conversation_id: str
    ) -> tuple[Conversation, Message]:
        """A conversation as `list_character_chats` shows it; 404 for any other."""
        conversation = await self.get(account, conversation_id)
        last = await self._last_message(conversation)
        if conversation.character is None or last is None:
            why = "has no character" if conversation.character is None else "has no message"
            raise NotFound(
                f"Conversation {conversation_id!r} {why}: the characters API does not show it",
                details={"id": conversation_id},
            )
        return conversation, last

    async def messages(
        self, account: Account, conversation_id: str, page: PageRequest, *, newest_first: bool
    ) -> Page[tuple[Message, Sequence[MessageAlternative]]]:
        """A page of messages, each with its versions (one query for the whole page)."""
        conversation = await self.get(account, conversation_id)
        rows = await self.repo.page_messages(conversation.id, page, newest_first=newest_first)
        versions = await self.repo.alternatives_of([m.id for m in rows if m.alternative_count])
        items = [(m, versions.get(m.id, [])) for m in rows]
        return Page(items, conversation.message_count, page)

    # steering: what the user changes in a conversation after the fact
    async def update(
        self,
        account: Account,
        conversation_id: str,
        *,
        title: str | None = None,
        system_prompt: str | None = None,
    ) -> Conversation:
        """Change the title and/or the system prompt (at least one)."""
        conversation = await self.get(account, conversation_id)
        values = {
            k: v for k, v in (("title", title), ("system_prompt", system_prompt)) if v is not None
        }
        if not values:
            raise InvalidRequest("Nothing to change: give `title` or `system_prompt`")
        await self.repo.set_details(conversation.id, values, utcnow())
        await self.repo.reload(conversation)
        await self._announce_update(conversation)
        return conversation

    async def delete(self, account: Account, conversation_id: str) -> None:
        """Delete a conversation and its messages. Its images stay in the gallery, its chat
        turns in the records, both unlinked. The character's `chat_count` (conversations
        started) does not move."""
        conversation = await self.get(account, conversation_id)
        await self.repo.delete(account.id, conversation.id)
        await emit(self.repo.session, account.id, "conversation.deleted",
                   payloads.deleted_conversation(conversation, utcnow()))  # fmt: skip

    async def edit_message(
        self,
        account: Account,
        conversation_id: str,
        message_id: str,
        *,
        content: str | None = None,
        selected: int | None = None,
    ) -> MessageDetail:
        """Rewrite a message (any, the user's or the character's; with versions, the
        selected one) or choose which of its versions it shows: exactly one of the two."""
        if (content is None) == (selected is None):
            raise InvalidRequest(
                "Give exactly one of `content` and `selected`",
                details={"fields": ["content", "selected"]},
            )
        conversation = await self.get(account, conversation_id)
        message = await self._message(conversation, message_id)
        if selected is not None and not message.alternative_count:
            raise InvalidRequest(
                "selected: this message has no alternatives", details={"field": "selected"}
            )
        await self.repo.touch(conversation.id, utcnow())
        edited: Message | None
        if content is not None:
            edited = await self.repo.edit_message(message.id, content)
        else:
            assert selected is not None
            edited = (
                await self.repo.select_alternative(message.id, selected) if selected >= 0 else None
            )
            if edited is None:  # (or deleted meanwhile, too rare to tell apart)
                raise InvalidRequest(
                    f"selected: this message's alternatives are 0 to "
                    f"{message.alternative_count - 1}",
                    details={"field": "selected", "count": message.alternative_count},
                )
        if edited is None:  # deleted meanwhile
            raise self._no_message(conversation, message_id)
        versions = (await self.repo.alternatives_of([edited.id])).get(edited.id, [])
        storage, session = self.characters.storage, self.repo.session
        await emit(session, account.id, "message.updated",
                   payloads.message(storage, conversation, edited, versions))  # fmt: skip
        return MessageDetail(conversation, edited, versions)

    async def delete_message(self, account: Account, conversation_id: str, message_id: str) -> None:
        """Delete a message: the conversation's count and last message follow, other
        messages keep their `seq`, and an image it showed stays in the gallery."""
        conversation = await self.get(account, conversation_id)
        message = await self._message(conversation, message_id)
        now = utcnow()
        if not await self.repo.delete_message(account.id, conversation.id, message.id, now):
            raise self._no_message(conversation, message_id)
        await self.repo.reload(conversation)
        storage, session = self.characters.storage, self.repo.session
        await emit(session, account.id, "message.deleted",
                   payloads.deleted_message(storage, conversation, message, now))  # fmt: skip
        await self._announce_update(conversation)

    async def branch(
        self, account: Account, conversation_id: str, message_id: str
    ) -> tuple[Conversation, Message]:
        """A new conversation with the same character, system prompt and model, holding a
        copy of this one's history up to and including `message_id`; with its last message.
        The copied history has the greeting already: none is added."""
        source = await self.get(account, conversation_id)
        until = await self.repo.get_message(source.id, message_id)
        if until is None:
            raise InvalidRequest(
                f"message_id: no message {message_id!r} in this conversation",
                details={"field": "message_id"},
            )
        await self._check_cap(account)
        now = utcnow()
        suffix = " (branch)"
        conversation = Conversation(
            id=new_id("conv"),
            account_id=account.id,
            character_id=source.character_id,
            title=(source.title[: MAX_TITLE - len(suffix)] + suffix).lstrip(),
            system_prompt=source.system_prompt,
            llm_id=source.llm_id,
            created_at=now,
            updated_at=now,
        )
        last = await self.repo.copy_history(source.id, until.seq, conversation)
        assert last is not None  # `until` itself is copied
        if source.character_id is not None:
            await self.characters.record_conversation_started(source.character_id)
        created = await self.get(account, conversation.id)
        await emit(self.repo.session, account.id, "conversation.created",
                   payloads.conversation(self.characters.storage, created, last))  # fmt: skip
        return created, last

    async def _message(self, conversation: Conversation, message_id: str) -> Message:
        message = await self.repo.get_message(conversation.id, message_id)
        if message is None:
            raise self._no_message(conversation, message_id)
        return message

    @staticmethod
    def _no_message(conversation: Conversation, message_id: str) -> NotFound:
        return NotFound(
            f"No message {message_id!r} in conversation {conversation.id!r}",
            details={"id": message_id, "conversation_id": conversation.id},
        )

    async def _last_message(self, conversation: Conversation) -> Message | None:
        if conversation.last_message_id is None:
            return None
        return await self.repo.get_message(conversation.id, conversation.last_message_id)

    async def _announce_update(self, conversation: Conversation) -> None:
        """`conversation.updated`, rendered with its last message."""
        session, storage = self.repo.session, self.characters.storage
        last = await self._last_message(conversation)
        await emit(session, conversation.account_id, "conversation.updated",
                   payloads.conversation(storage, conversation, last))  # fmt: skip
